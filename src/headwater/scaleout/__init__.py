"""Scale-out implementations of the runtime's protocols, backed by Redis.

`RedisEventBus` (engine.bus.EventBus), `RedisRunControl` (engine.control.RunControl)
and `RedisRateLimiter` (ratelimit.RateLimiter) let several API processes and
Celery workers share live run feeds, stops and rate-limit windows. They are
imported only when `HEADWATER_REDIS_URL` is set, so the embedded mode never
needs redis or limits; each passes the same conformance suite as its
in-process counterpart (tests/conformance).
"""
