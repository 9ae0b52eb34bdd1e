// The engine host's side of its message channel. Electron's utilityProcess gives the child
// `process.parentPort` (a MessagePort-like object); child_process.fork gives `process.send`. Same messages.

export interface ParentPort {
  send(msg: unknown): void;
  onMessage(cb: (msg: unknown) => void): void;
  onDisconnect(cb: () => void): void;
  close(): void;
}

interface ElectronParentPort {
  postMessage(msg: unknown): void;
  on(event: 'message', cb: (e: { data: unknown }) => void): void;
}

export function connectToParent(): ParentPort {
  const electronPort = (process as unknown as { parentPort?: ElectronParentPort }).parentPort;
  if (electronPort) {
    return {
      send: (msg) => electronPort.postMessage(msg),
      onMessage: (cb) => electronPort.on('message', (e) => cb(e.data)),
      // A utility process is killed with its parent; nothing to watch.
      onDisconnect: () => undefined,
      close: () => undefined,
    };
  }
  if (typeof process.send !== 'function') {
    throw new Error('the engine host must be started by Adapter Studio (it has no channel to a parent process)');
  }
  return {
    send: (msg) => {
      if (process.connected) process.send!(msg);
    },
    onMessage: (cb) => process.on('message', cb),
    onDisconnect: (cb) => process.on('disconnect', cb),
    close: () => {
      if (process.connected) process.disconnect();
    },
  };
}
