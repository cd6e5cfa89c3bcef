/** Process entry of the `tessera` command. */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
