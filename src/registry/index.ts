/** The OCI distribution client: what the CLI and the build use to talk to registries. */
export { RegistryClient, isInsecureHost, type ClientOptions } from './client.js';
export { pullImage, resolveDigest, fetchManifest, type PullOptions, type PullResult } from './pull.js';
export { pushImage, type PushOptions, type PushResult } from './push.js';
export { lookupCredentials, saveCredentials, eraseCredentials, dockerConfigPath, type Credentials } from './credentials.js';
