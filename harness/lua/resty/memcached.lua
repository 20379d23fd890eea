-- Debian packages lua-resty-memcached as nginx.memcached; this makes require "resty.memcached"
-- (what OpenResty and the seed script use) find it, so the same Lua runs on both.
return require "nginx.memcached"
