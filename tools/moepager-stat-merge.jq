# moepager-stat-merge.jq — one view of a job on several ranks (mpirun, src/dist.h):
#   for s in STATS.rank*; do moepager-stat --json "$s"; done | jq -s -f tools/moepager-stat-merge.jq
# Counters are summed over the ranks (each pages only its own layers); decode
# tokens and tokens/s are rank 0's (the only rank that counts tokens); each
# layer is taken from the rank that used it.
def total(f): map(f) | add;
def rate(a; b): if b > 0 then a / b else null end;
{
  ranks: length,
  pids: map(.pid),
  decode: (max_by(.decode.tokens) | .decode),
  experts_total: (map(.experts_total) |
    { uses: total(.uses), hits: total(.hits), page_cache_hits: total(.page_cache_hits),
      misses: total(.misses), stall_ns: total(.stall_ns) }
    | .hit_rate = rate(.hits; .uses) | .page_cache_rate = rate(.page_cache_hits; .uses)
    | .miss_rate = rate(.misses; .uses)),
  prefetch: (map(.prefetch) | { issued: total(.issued), used: total(.used), wasted: total(.wasted) }
    | .precision = rate(.used; .issued)),
  pool: (map(.pool) | { used_bytes: total(.used_bytes), total_bytes: total(.total_bytes),
    evictions: total(.evictions) }),
  io: (map(.io) | { reads: total(.reads), errors: total(.errors), disk_bytes: total(.disk_bytes),
    page_cache_bytes: total(.page_cache_bytes) }),
  layers: [ map(.layers) | transpose[] | max_by(.hits + .page_cache_hits + .misses) ]
}
