// ANSI SGR colour codes in log text, as runs of text with CSS classes. Only SGR (ESC [ ... m)
// is interpreted; other escape sequences are dropped; nothing becomes markup (the text is
// rendered as text), so a log cannot inject HTML.
export interface Run {
  text: string;
  cls: string;
}

const ESC = /\x1b\[([0-9;]*)([A-Za-z])/g;

export function parseAnsi(line: string): Run[] {
  const runs: Run[] = [];
  let fg = '', bg = '', bold = false, last = 0;
  const push = (text: string) => {
    if (!text) return;
    const cls = [fg && `fg-${fg}`, bg && `bg-${bg}`, bold && 'bold'].filter(Boolean).join(' ');
    runs.push({ text, cls });
  };
  for (const m of line.matchAll(ESC)) {
    push(line.slice(last, m.index));
    last = (m.index ?? 0) + m[0].length;
    if (m[2] !== 'm') continue;
    const codes = m[1] === '' ? [0] : m[1].split(';').map((x) => Number(x));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) {
        fg = '';
        bg = '';
        bold = false;
      } else if (c === 1) bold = true;
      else if (c === 22) bold = false;
      else if (c >= 30 && c <= 37) fg = String(c - 30);
      else if (c >= 90 && c <= 97) fg = String(c - 90 + 8);
      else if (c === 39) fg = '';
      else if (c >= 40 && c <= 47) bg = String(c - 40);
      else if (c >= 100 && c <= 107) bg = String(c - 100 + 8);
      else if (c === 49) bg = '';
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) i += 2;
      else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4;
    }
  }
  push(line.slice(last).replace(/\x1b[^\x1b]*$/, ''));
  return runs;
}
