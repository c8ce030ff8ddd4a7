/**
 * The load state of every endpoint, as a struct of arrays: each endpoint owns one row of
 * `ROW` numbers in one shared Float64Array, and its `Endpoint`, `PeakEwma` and `FailureRate`
 * objects read and write their fields there. A P2C pick then reads two rows (each within two
 * cache lines, the fields a pick needs all in the first) instead of chasing pointers through
 * two endpoint objects, their estimate objects and the boxed numbers they hold, which at 10,000
 * endpoints are scattered over megabytes of heap and miss the cache on almost every pick.
 *
 * A row is given back only when nothing refers to its `LoadCell` any more (a FinalizationRegistry),
 * so a removed endpoint that still finishes requests keeps writing to its own row. Node runs
 * JavaScript on one thread per isolate (a worker has its own module instance and table).
 */

/** Numbers per row: one 64-byte cache line, all that a pick reads. */
export const ROW = 8;
/** Offsets within a row. */
export const FLAGS = 0;
export const EJECTED_UNTIL = 1;
export const INFLIGHT = 2;
export const EWMA_ESTIMATE = 3;
export const EWMA_UPDATED_AT = 4;
export const EWMA_LAMBDA = 5;
export const FAILURE_RATE = 6;
/** weight × weightFactor (the default weight of the balancers). */
export const EFFECTIVE_WEIGHT = 7;
/** Numbers per row of `cold`: what only a failure rate above 0 needs. */
export const COLD_ROW = 2;
/** Offsets within a row of `cold`. */
export const FAILURE_UPDATED_AT = 0;
export const FAILURE_LAMBDA = 1;

/** Bits of FLAGS. */
export const HEALTHY = 1;
export const DRAINING = 2;
export const SAMPLED = 4;

/**
 * Every row, one after the other (`hot`), and the rest of each row in the same order (`cold`, row r
 * at r × COLD_ROW). When full they are replaced by arrays twice the size (rows keep their offsets),
 * so always read them through this object, never keep them.
 */
export const tables = {
  hot: new Float64Array(256 * ROW),
  cold: new Float64Array(256 * COLD_ROW),
};
const free: number[] = [];
let nextRow = 0;

/** One row: the offset of its first number in `table`, and in `cold`. */
export interface LoadCell {
  readonly o: number;
  readonly c: number;
}

const registry = new FinalizationRegistry<number>((row) => {
  free.push(row);
});

/** A zeroed row of its own, for one endpoint or one estimator; given back once `cell` is unreachable. */
export function allocateCell(): LoadCell {
  let row = free.pop();
  if (row === undefined) {
    row = nextRow++;
    if ((row + 1) * ROW > tables.hot.length) {
      const hot = new Float64Array(tables.hot.length * 2);
      hot.set(tables.hot);
      const cold = new Float64Array(tables.cold.length * 2);
      cold.set(tables.cold);
      tables.hot = hot;
      tables.cold = cold;
    }
  }
  const cell: LoadCell = { o: row * ROW, c: row * COLD_ROW };
  tables.hot.fill(0, cell.o, cell.o + ROW);
  tables.cold.fill(0, cell.c, cell.c + COLD_ROW);
  registry.register(cell, row);
  return cell;
}

/** Rows in use, free, and the table's capacity (for tests and benchmarks). */
export function loadTableStats(): { rows: number; free: number; capacity: number } {
  return { rows: nextRow - free.length, free: free.length, capacity: tables.hot.length / ROW };
}
