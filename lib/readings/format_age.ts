/**
 * A reading's age for people: `40 s ago`, `12 min ago`, `3 h ago`, `2 d ago`, or `in 5 s` when
 * the device clock runs ahead.
 */
export function formatAge(ageS: number): string {
  const s = Math.abs(Math.round(ageS));
  let text: string;
  if (s < 90) text = `${s} s`;
  else if (s < 90 * 60) text = `${Math.round(s / 60)} min`;
  else if (s < 36 * 3600) text = `${Math.round(s / 3600)} h`;
  else text = `${Math.round(s / 86400)} d`;
  return ageS < 0 && s > 0 ? `in ${text}` : `${text} ago`;
}
