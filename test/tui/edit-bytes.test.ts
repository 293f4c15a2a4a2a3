/**
 * Editing paused bytes: which form a person gets (text or hex dump), reading the file back (an
 * editor's final newline, hex mistakes), the editor run as a child process, and handing the
 * terminal's input over (a socket stops reading, and reads again for the next listener).
 */
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Socket, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { editableText, editBytes, editedBytes, editFormat, editorCommand } from "../../src/tui/edit-bytes.js";
import { releaseInput } from "../../src/tui/terminal-handoff.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-edit-bytes-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("editFormat", () => {
  it("text as is for printable UTF-8 (TAB, CR, LF allowed), else a hex dump", () => {
    expect(editFormat(Buffer.from("GET / HTTP/1.1\r\nHost: é\t\n"))).toBe("text");
    expect(editFormat(Buffer.alloc(0))).toBe("text");
    expect(editFormat(Buffer.from("a\x1b[31mred"))).toBe("hex");
    expect(editFormat(Buffer.from([0x41, 0x00]))).toBe("hex");
    expect(editFormat(Buffer.from([0xc3, 0x28]))).toBe("hex");
  });
});

describe("editedBytes", () => {
  const original = Buffer.from("hello");
  it("takes off one final LF or CRLF an editor added when the original had none", () => {
    expect(editedBytes(original, "text", Buffer.from("hello\n"))).toEqual({ kind: "unchanged" });
    expect(editedBytes(original, "text", Buffer.from("hello\r\n"))).toEqual({ kind: "unchanged" });
    expect(editedBytes(original, "text", Buffer.from("HELLO\n\n"))).toEqual({ kind: "edited", bytes: Uint8Array.from(Buffer.from("HELLO\n")) });
    expect(editedBytes(Buffer.from("line\n"), "text", Buffer.from("line\n\n"))).toEqual({ kind: "edited", bytes: Uint8Array.from(Buffer.from("line\n\n")) });
  });

  it("a hex dump round-trips through its own file, and a mistake is an error with its line", () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0x1b]);
    expect(editedBytes(bytes, "hex", editableText(bytes, "hex", "a test"))).toEqual({ kind: "unchanged" });
    const typo = Buffer.from(Buffer.from(editableText(bytes, "hex")).toString().replace(" ff ", " fg "));
    expect(editedBytes(bytes, "hex", typo)).toEqual({
      kind: "error",
      message: 'hex dump line 4, column 20: "fg" is not a hex byte (two hex digits, 00 to ff)',
    });
  });
});

describe("editBytes", () => {
  it("runs the editor on a temporary file and reads it back", async () => {
    const script = join(root, "edit.cjs");
    writeFileSync(script, 'const fs = require("fs"); fs.writeFileSync(process.argv[2], fs.readFileSync(process.argv[2], "utf8").toUpperCase());\n');
    const outcome = await editBytes(Buffer.from("abc"), { editor: `"${process.execPath}" "${script}"`, tmp: root });
    expect(outcome).toEqual({ kind: "edited", bytes: Uint8Array.from(Buffer.from("ABC")) });
  });

  it("an editor that fails keeps the original", async () => {
    expect(await editBytes(Buffer.from("abc"), { editor: "exit 3;", tmp: root })).toEqual({
      kind: "error",
      message: "the editor (exit 3;) exited with status 3: the original is kept",
    });
  });

  it("$VISUAL, then $EDITOR, then vi", () => {
    expect(editorCommand({ VISUAL: "nano", EDITOR: "ed" })).toBe("nano");
    expect(editorCommand({ VISUAL: " ", EDITOR: "ed" })).toBe("ed");
    expect(editorCommand({})).toBe("vi");
  });
});

describe("releaseInput", () => {
  it("stops a reading socket; once reclaimed, the next readable listener reads what came meanwhile", async () => {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const client = connect(port, "127.0.0.1");
    const [peer] = (await once(server, "connection")) as [Socket];
    const first = once(client, "readable");
    const onReadable = () => {};
    client.on("readable", onReadable);
    peer.write("a");
    await first;
    expect(String(client.read())).toBe("a");
    client.removeListener("readable", onReadable);
    const reclaim = releaseInput(client);
    expect((client as unknown as { _handle: { reading: boolean } })._handle.reading).toBe(false);
    peer.write("bc");
    reclaim();
    const got: string[] = [];
    client.on("readable", () => {
      for (let chunk = client.read(); chunk !== null; chunk = client.read()) got.push(String(chunk));
    });
    await expect.poll(() => got.join(""), { timeout: 5000 }).toBe("bc");
    client.destroy();
    peer.destroy();
    server.close();
  });
});
