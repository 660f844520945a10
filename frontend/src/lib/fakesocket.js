// A websocket the unit tests drive by hand (a test helper, not part of the app).
export class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.closed = false;
    FakeSocket.all.push(this);
  }
  open() {
    this.onopen && this.onopen({});
  }
  frame(obj) {
    this.onmessage && this.onmessage({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) });
  }
  drop(code = 1006, reason = '') {
    this.closed = true;
    this.onclose && this.onclose({ code, reason });
  }
  close() {
    this.closed = true;
  }
}
