// Assertions on DioError: its code, and words its message must hold.
import * as assert from "uvu/assert";
import { DioError } from "../../host/index.js";

function isDioError(error: unknown, code: string, words: string): void {
  assert.instance(error, DioError);
  assert.is((error as DioError).code, code, (error as DioError).message);
  assert.ok((error as DioError).message.includes(words), (error as DioError).message);
}

/** `fn` throws a DioError with `code` whose message holds `words`. */
export function throwsDioError(fn: () => unknown, code: string, words: string): void {
  try {
    fn();
  } catch (error) {
    isDioError(error, code, words);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

/** `made` rejects with a DioError with `code` whose message holds `words`. */
export async function rejectsDioError(made: Promise<unknown>, code: string, words: string): Promise<void> {
  try {
    await made;
  } catch (error) {
    isDioError(error, code, words);
    return;
  }
  assert.unreachable(`expected ${code}`);
}
