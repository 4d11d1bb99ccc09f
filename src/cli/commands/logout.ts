import type { HoistCommand } from '../command.js';
import { configKey, eraseCredentials } from '../../registry/credentials.js';
import { registryHost } from './login.js';

export const logoutCommand: HoistCommand = {
  command: 'logout [registry]',
  describe: 'Remove the saved credentials for a registry',
  builder: (y) => y.positional('registry', { type: 'string', describe: 'host[:port] (default: Docker Hub)' }),
  handler: async (args, io) => {
    const host = registryHost(args.registry);
    const removed = await eraseCredentials(host, io.env);
    io.stdout.write(removed ? `Removing login credentials for ${configKey(host)}\n` : `Not logged in to ${configKey(host)}\n`);
  },
};
