/** The total of a cart: each item's price times its quantity. */
export function total(items) {
  let sum = 0;
  for (const item of items) sum += item.price;
  return sum;
}
