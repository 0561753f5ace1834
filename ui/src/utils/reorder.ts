/** The list with the item `moved` placed where the item `target` is. */
export function moveItem<T extends { id: number }>(list: T[], moved: number, target: number): T[] {
  const from = list.findIndex((g) => g.id === moved);
  const to = list.findIndex((g) => g.id === target);
  if (from < 0 || to < 0 || from === to) return list;
  const next = [...list];
  const [item] = next.splice(from, 1);
  next.splice(to, 0, item as T);
  return next;
}

/** `PUT /api/groups/reorder` items for a list in its new order (sort = position, from 1). */
export function reorderItems(list: { id: number }[]): { id: number; sort: number }[] {
  return list.map((g, i) => ({ id: g.id, sort: i + 1 }));
}
