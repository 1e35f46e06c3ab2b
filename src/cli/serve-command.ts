/**
 * `onebit serve [MODEL.onebit] [--port N] [--data-dir DIR]`: a local web app (docs/browser.md) in which a
 * model classifies what the user draws or drops, on the WebAssembly engine in the page, and in which the
 * user trains mlp-100 on Fashion-MNIST in the page. Serves on 127.0.0.1 only, until Ctrl-C.
 */
import { Command } from 'commander';
import { loadDataset } from '../data/dataset.js';
import { ConfigError } from '../errors.js';
import { defaultCacheDir, parseNonNegativeInteger } from './options.js';
import { CLASS_NAMES, readModelBytes } from './predict-command.js';
import { startAppServer } from './serve/server.js';

interface ServeFlags {
  port: number;
  dataDir?: string;
  json: boolean;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve a web app on 127.0.0.1 that runs a .onebit model in the page')
    .argument('[model]', 'the .onebit model the page loads (one can also be dropped on the page)')
    .option('--port <n>', 'the port (0: any free one)', parseNonNegativeInteger('--port'), 8080)
    .option(
      '--data-dir <dir>',
      'where the Fashion-MNIST files are that the page trains on (default: the cache, then the Debian package)',
    )
    .option('--json', 'print one JSON object with the address', false)
    .action(async (modelPath: string | undefined, flags: ServeFlags) => {
      if (flags.port > 65535) throw new ConfigError('--port', 'a port in 0..65535', String(flags.port));
      let model: Uint8Array | null = null;
      // Refused with what it is unless it is a valid .onebit file.
      if (modelPath !== undefined) model = readModelBytes(modelPath, 'serve').bytes;
      const cacheDir = defaultCacheDir();
      const app = await startAppServer({
        model,
        classNames: CLASS_NAMES,
        port: flags.port,
        // Read when the page first asks to train; a missing set reaches the page as the loader's message.
        data: (split) =>
          loadDataset('fashion-mnist', {
            split,
            cacheDir,
            ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
          }),
      }).catch((error: unknown) => {
        if ((error as { code?: unknown }).code === 'EADDRINUSE')
          throw new ConfigError('--port', 'a free port (0: any)', `${flags.port}, which is in use`);
        throw error;
      });
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ type: 'serve', url: app.url, model: modelPath ?? null })}\n`,
        );
      } else {
        process.stderr.write(`onebit serve: ${app.url} (Ctrl-C to stop)\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void app.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
