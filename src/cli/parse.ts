/** Option parsers that reject bad values with a message naming the flag, the value and what was expected. */
import { InvalidArgumentError } from 'commander';

export const positiveInt = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, got "${v}"`);
  return n;
};

export const nonNegativeNumber = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative number, got "${v}"`);
  return n;
};

export const nonNegativeInt = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a whole number ≥ 0, got "${v}"`);
  return n;
};

/** Comma-separated positive integers, e.g. 8,16,32. */
export const positiveInts = (flag: string) => (v: string): number[] => {
  const parts = v.split(',');
  const nums = parts.map(Number);
  if (nums.some((n, i) => !Number.isInteger(n) || n < 1 || parts[i]!.trim() === '')) throw new InvalidArgumentError(`${flag} must be positive integers separated by commas, got "${v}"`);
  return nums;
};

export const positiveNumber = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number, got "${v}"`);
  return n;
};
