#!/bin/sh
# Entrypoint of the lab's redis service. The config file is written once and then belongs to Redis,
# so that CONFIG REWRITE keeps what operators set; the password never appears in a process argument.
set -eu
conf=/data/redis.conf
mkdir -p /data
if [ ! -s "$conf" ]; then
  umask 077
  cat >"$conf" <<CONF
bind $LAB_ADDR
port 6379
protected-mode yes
requirepass "$REDIS_PASSWORD"
dir /data
dbfilename dump.rdb
save 900 1 300 100 60 10000
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
CONF
fi
chown -R redis:redis /data
chmod 0600 "$conf"
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$conf"
