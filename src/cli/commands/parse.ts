import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { HoistCommand } from '../command.js';
import type { CliIO } from '../io.js';
import { HoistError } from '../../util/errors.js';
import { parseDockerfile, dumpAST } from '../../dockerfile/parser.js';
import type { DockerfileAST } from '../../dockerfile/ast.js';

/** Reads the Dockerfile named by `-f` (or `-` for stdin), relative to the working directory. */
export async function readDockerfileArg(file: string, io: CliIO): Promise<{ name: string; text: string }> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.from(c));
    return { name: 'Dockerfile', text: Buffer.concat(chunks).toString('utf8') };
  }
  const path = resolve(io.cwd, file);
  try {
    return { name: file, text: await readFile(path, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HoistError('E_NOT_FOUND', `cannot read Dockerfile: ${file}: no such file`, { hint: 'pass the right path with -f' });
    if (code === 'EISDIR') throw new HoistError('E_NOT_FOUND', `cannot read Dockerfile: ${file} is a directory`, { hint: `did you mean -f ${file}/Dockerfile?` });
    throw new HoistError('E_IO', `cannot read Dockerfile ${file}: ${(e as Error).message}`);
  }
}

/** Loads and parses the Dockerfile named by `-f`. */
export async function loadDockerfile(file: string, io: CliIO): Promise<DockerfileAST> {
  const { name, text } = await readDockerfileArg(file, io);
  return parseDockerfile(text, { file: name });
}

export const parseCommand: HoistCommand = {
  command: 'parse',
  describe: "Print a Dockerfile's parse tree (BuildKit's dump format, or JSON with source ranges)",
  builder: (y) =>
    y
      .option('file', { alias: 'f', type: 'string', default: 'Dockerfile', describe: 'Dockerfile to parse (- for stdin)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON with source ranges, heredocs and directives' })
      .example('hoist parse -f fixtures/hello/Dockerfile', 'print (from "busybox") ... one line per instruction'),
  handler: async (args, io) => {
    const ast = await loadDockerfile(args.file as string, io);
    if (args.json) {
      const { lines: _lines, ...rest } = ast;
      io.stdout.write(JSON.stringify(rest, null, 2) + '\n');
    } else {
      io.stdout.write(dumpAST(ast));
    }
    for (const w of ast.warnings) io.stderr.write(`warning: ${ast.file}:${w.line}: ${w.message}\n`);
  },
};
