// Preloaded into the KFP UI server (node --require): upstream's server listens on every interface
// (app.listen(port)); here a listen() given a port and no host binds 127.0.0.1 instead.
'use strict';
const net = require('net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const bare = typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port));
  if (bare && typeof args[1] !== 'string') {
    args.splice(0, 1, Number(port), '127.0.0.1');
  }
  return listen.apply(this, args);
};
