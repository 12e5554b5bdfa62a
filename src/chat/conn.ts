/**
 * The connection to one user, whatever carries it (go-chat-i-guess's `Conn`): a WebSocket, an SSE
 * stream plus POSTs, or the application's own. The chat never sees the transport.
 */
export interface Conn {
  /**
   * Called once by `ChatServer.connect` when the user is admitted, before anything is sent: hand
   * every text the user sends to `onText` (in order), and call `onClose` once when the connection
   * ends on the user's side. Texts that arrive while the join is in progress are kept and handled
   * once it completes. A join refused at once (name taken, room full) gets a system message and
   * `close` without `receive`.
   */
  receive(onText: (text: string) => void, onClose: () => void): void;
  /** One message for the user: a JSON text (see `ChatMessage`). Must not throw. */
  send(message: string): void;
  /**
   * Ends the connection from the server's side, after what was sent. `code` is a WebSocket close
   * code (1000 quit/removed/room closed, 1001 shutdown, 4002 disconnected by the server API,
   * 4009 name taken, 1011/1013 join failed); `reason` is for humans. Called at most once, and
   * not after the connection closed on the user's side.
   */
  close(code: number, reason: string): void;
}
