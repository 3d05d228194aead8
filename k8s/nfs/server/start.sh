#!/bin/bash
# Start rpcbind (ganesha registers NFSv3 with it, or exits), then ganesha in the foreground, logging to stdout.
set -euo pipefail
mkdir -p /run/rpcbind /var/run/ganesha /exports
rpcbind -w
exec ganesha.nfsd -F -L /dev/stdout -f /etc/ganesha/ganesha.conf -N NIV_EVENT
