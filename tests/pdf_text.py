"""Just enough PDF reading for tests: the objects (through the xref table), the page count, and each page's text.

Text is decoded through each font's ToUnicode CMap, the way a PDF viewer copies text, for the Type0/Identity-H fonts
Qt's PDF writer embeds. No third-party PDF library is needed.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass


@dataclass
class Pdf:
    version: str
    objects: dict[int, bytes]  # number -> the object's bytes between "obj" and "endobj" (stream data raw)

    def dict_of(self, num: int) -> bytes:
        body = self.objects[num]
        return body.split(b"stream", 1)[0]

    def ref(self, num: int, key: str) -> int | None:
        m = re.search(rb"/" + key.encode() + rb"\s+(\d+)\s+0\s+R", self.dict_of(num))
        return int(m.group(1)) if m else None

    def stream(self, num: int) -> bytes:
        body = self.objects[num]
        head, rest = body.split(b"stream", 1)
        rest = rest[2:] if rest.startswith(b"\r\n") else rest[1:]
        m = re.search(rb"/Length\s+(\d+)(\s+0\s+R)?", head)
        length = int(self.objects[int(m.group(1))].strip()) if m.group(2) else int(m.group(1))
        raw = rest[:length]
        return zlib.decompress(raw) if b"/FlateDecode" in head else raw


def read_pdf(data: bytes) -> Pdf:
    if not data.startswith(b"%PDF-"):
        raise ValueError("not a PDF: no %PDF- header")
    if b"%%EOF" not in data[-64:]:
        raise ValueError("truncated PDF: no %%EOF at the end")
    start = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    m = re.match(rb"xref\s+(\d+)\s+(\d+)\s+", data[start:])
    if not m:
        raise ValueError("no xref table where startxref points")
    first, count = int(m.group(1)), int(m.group(2))
    table = data[start + m.end(): start + m.end() + 20 * count]
    objects = {}
    for i in range(count):
        entry = table[20 * i: 20 * i + 20]
        offset, _, kind = entry[:10], entry[11:16], entry[17:18]
        if kind != b"n":
            continue
        pos = int(offset)
        head = re.match(rb"(\d+)\s+0\s+obj", data[pos:pos + 32])
        if not head or int(head.group(1)) != first + i:
            raise ValueError(f"xref entry {first + i} does not point at its object")
        end = data.find(b"endobj", pos)
        objects[first + i] = data[pos + head.end(): end]
    return Pdf(data[5:8].decode(), objects)


def page_numbers(pdf: Pdf) -> list[int]:
    """Page objects in reading order (the /Kids of the page tree root)."""
    catalog = next(n for n in pdf.objects if re.search(rb"/Type\s*/Catalog", pdf.dict_of(n)))
    root = pdf.ref(catalog, "Pages")
    kids = re.search(rb"/Kids\s*\[([^\]]*)\]", pdf.dict_of(root)).group(1)
    count = int(re.search(rb"/Count\s+(\d+)", pdf.dict_of(root)).group(1))
    pages = [int(k) for k in re.findall(rb"(\d+)\s+0\s+R", kids)]
    if len(pages) != count:
        raise ValueError(f"page tree says {count} pages but lists {len(pages)}")
    return pages


def _cmap(text: bytes) -> dict[int, str]:
    out: dict[int, str] = {}

    def uni(hex_: bytes) -> str:
        return bytes.fromhex(hex_.decode()).decode("utf-16-be", errors="replace")

    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = uni(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)", block):
            lo, hi = int(lo, 16), int(hi, 16)
            if dst.startswith(b"["):
                for k, item in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", dst)):
                    out[lo + k] = uni(item)
            else:
                base = int(dst[1:-1], 16)
                for k in range(hi - lo + 1):
                    out[lo + k] = chr(base + k)
    return out


def page_text(pdf: Pdf, page: int) -> str:
    """The text shown on one page, in drawing order (glyph runs joined by spaces)."""
    resources = pdf.dict_of(pdf.ref(page, "Resources"))
    fonts_block = re.search(rb"/Font\s*<<(.*?)>>", resources, re.S)
    fonts = {name.decode(): _cmap(pdf.stream(pdf.ref(int(num), "ToUnicode")))
             for name, num in re.findall(rb"/(\w+)\s+(\d+)\s+0\s+R", fonts_block.group(1) if fonts_block else b"")}
    content = pdf.stream(pdf.ref(page, "Contents"))
    runs, font = [], {}
    for m in re.finditer(rb"/(\w+)\s+[\d.]+\s+Tf|(<[0-9A-Fa-f]*>|\[[^\]]*\])\s*T[jJ]", content):
        if m.group(1):
            font = fonts.get(m.group(1).decode(), {})
            continue
        hexes = re.findall(rb"<([0-9A-Fa-f]*)>", m.group(2))
        runs.append("".join(font.get(int(h[i:i + 4], 16), "?") for h in hexes for i in range(0, len(h), 4)))
    return " ".join(runs)


def compact(text: str) -> str:
    """Text without whitespace (Qt places words glyph by glyph) and with ligatures (ﬁ) spelled out, to compare."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
