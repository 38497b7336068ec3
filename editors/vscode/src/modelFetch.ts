// The server's "the model did not load" messages tell the user to run `slm-ls models fetch`.
// In VS Code the server is usually the binary bundled in the extension, with no `slm-ls` on
// PATH, so the extension shows those messages with a "Download Model" button, which runs the
// binary the extension uses (`<binary> models fetch`, in the extension host, with the
// environment the server gets), and names that binary's full path in the text.

/** The button on a message that offers the download. */
export const DOWNLOAD_MODEL = 'Download Model';

/** Whether a server message is about the default model missing or broken (fixed by a fetch). */
export function offersModelFetch(message: string): boolean {
  return /\bslm-ls models fetch\b/.test(message);
}

/** `command` as a POSIX shell word (quoted only when needed), for a user to copy. */
export function shellWord(command: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(command) ? command : `'${command.replace(/'/g, `'\\''`)}'`;
}

/**
 * The message with its advice made to work from VS Code: "Run `slm-ls models fetch`" becomes
 * the button, with the exact command it runs; any other mention names the binary's path.
 */
export function rewriteFetchAdvice(message: string, command: string | undefined): string {
  const cmd = command ? `${shellWord(command)} models fetch` : 'slm-ls models fetch';
  if (message.includes(`"${DOWNLOAD_MODEL}"`)) {
    return message; // already rewritten
  }
  return message.replace(/(\bRun |\bre-download it with )?`slm-ls models fetch`/g, (_all, lead: string | undefined) =>
    lead === 'Run '
      ? `Click "${DOWNLOAD_MODEL}" (it runs \`${cmd}\`)`
      : lead
        ? `${lead}"${DOWNLOAD_MODEL}" (it runs \`${cmd}\`)`
        : `"${DOWNLOAD_MODEL}" (\`${cmd}\`)`,
  );
}

/** The last non-empty line of a fetch's stderr so far (its progress, or its error). */
export function lastLine(text: string): string {
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== '');
  return lines.at(-1) ?? '';
}
