import type { Dispatcher } from 'undici';
import type { HeaderRecord } from './headers.ts';

/** undici dispatch options as the mesh passes them down: headers normalized to a lowercase record. */
export type MeshDispatchOptions = Omit<Dispatcher.DispatchOptions, 'headers'> & {
  headers: HeaderRecord;
  /**
   * The TLS server name for undici (an option its Request reads, missing from its types): set by
   * the endpoint from the final Host header unless the caller gave one.
   */
  servername?: string | undefined;
};
