import { test } from 'node:test';
import assert from 'node:assert/strict';
import { total } from '../lib/cart.js';

await test('an empty cart costs nothing', () => assert.equal(total([]), 0));
await test('quantities multiply prices', () =>
  assert.equal(
    total([
      { price: 3, qty: 4 },
      { price: 5, qty: 1 },
    ]),
    17,
  ));
