/**
 * `tessera serve --checkpoint C | --model m.onnx`: the HTTP inference API and web page. Runs
 * until SIGTERM or SIGINT, then finishes the requests in flight and exits 0.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { createServer, parseByteSize } from '../serve/server.js';
import { loadServedModel } from '../serve/model_source.js';
import { sharedOption } from './common_options.js';
import { nonNegativeNumber, positiveInt } from './parse.js';

interface ServeFlags {
  checkpoint?: string; model?: string; port: number; host: string; maxBatch: number; maxWaitMs: number;
  bodyLimit: number; topk: number; threads?: number; log?: boolean; modelKwargs?: Record<string, unknown>;
}

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got "${v}"`);
  return n;
};

const byteSize = (v: string): number => {
  try {
    return parseByteSize(v);
  } catch (e) {
    throw new InvalidArgumentError(`--body-limit: ${(e as Error).message}`);
  }
};

export function registerServeCommand(program: Command): void {
  program.command('serve')
    .description('serve a model over HTTP: POST /v1/predict, /v1/predict/batch, GET /v1/model, /healthz, /metrics and a web page at /')
    .addOption(sharedOption('checkpoint', { description: 'a checkpoint (tessera/timm .safetensors, .pth, a Hugging Face directory), exported to ONNX in memory' }))
    .option('--model <file>', 'an .onnx file written by `tessera export`')
    .addOption(sharedOption('modelKwargs'))
    .option('--port <n>', 'TCP port (0: any free port)', port, 8080)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--max-batch <n>', 'most images per model run; 1 turns dynamic batching off', positiveInt('--max-batch'), 32)
    .option('--max-wait-ms <ms>', 'longest an image waits for others to join its batch', nonNegativeNumber('--max-wait-ms'), 5)
    .option('--body-limit <size>', 'largest request body, e.g. 10mb; a multipart body counts whole (all its files together); beyond it 413', byteSize, 10 * 2 ** 20)
    .option('--topk <k>', 'labels returned per image (requests may ask for ?topk=)', positiveInt('--topk'), 5)
    .addOption(sharedOption('threads'))
    .option('--log', 'log every request (JSON lines on stdout)')
    .action(async (f: ServeFlags) => {
      const model = await loadServedModel({ checkpoint: f.checkpoint, onnx: f.model, modelKwargs: f.modelKwargs }, { threads: f.threads });
      const server = await createServer({
        model, maxBatch: f.maxBatch, maxWaitMs: f.maxWaitMs, bodyLimit: f.bodyLimit, topk: f.topk, logger: f.log ?? false,
      });
      let url: string;
      try {
        url = await server.listen(f.port, f.host);
      } catch (e) {
        await server.close();
        throw new Error(`cannot listen on ${f.host}:${f.port}: ${(e as Error).message}`);
      }
      const m = model.meta;
      console.error(`tessera serve: ${m.model} (${m.classNames.length} labels${m.quantization === 'none' ? '' : `, ${m.quantization}`}) on ${url}`
        + ` (max batch ${f.maxBatch}, max wait ${f.maxWaitMs} ms)`);
      await new Promise<void>((resolve, reject) => {
        const stop = (signal: NodeJS.Signals) => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          console.error(`tessera serve: ${signal}, finishing requests in flight`);
          server.close().then(() => {
            console.error('tessera serve: stopped');
            resolve();
          }, reject);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
