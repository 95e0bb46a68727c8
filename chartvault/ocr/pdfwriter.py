"""A small PDF writer for renditions: image pages, an invisible text layer, PDF/A-2b's trappings.

Written by hand rather than through pdfium because pdfium cannot embed an image without decoding it:
a bilevel scan must go in as CCITT G4 (lossless) and a JPEG as its own bytes (no second loss), which
only a writer that takes the encoded stream can do. The output is deterministic (no clock, the
document ID a hash of the content) so a rendition rebuilt after a crash is byte for byte the one
stored before, and lands on the same content-addressed key.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, field
from importlib import resources

_FONT_NAME = b"GlyphLessFont"
# Each glyph of the glyphless font is 500/1000 em wide (its DW): a word of n characters set at size
# 1 advances n/2 text-space units, which the word's matrix stretches to the box.
GLYPH_ADVANCE = 0.5

_TO_UNICODE = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
1 beginbfrange
<0000> <FFFF> <0000>
endbfrange
endcmap
CMapName currentdict /CMap defineresource pop
end
end
"""


@dataclass(frozen=True, slots=True)
class ImageStream:
    """An encoded page image as it goes into the PDF: its filter, parameters and bytes."""

    width: int
    height: int
    colorspace: bytes  # b"/DeviceGray" or b"/DeviceRGB"
    bits: int
    filter: bytes  # b"/CCITTFaxDecode", b"/DCTDecode" or b"/FlateDecode"
    data: bytes
    decode_parms: bytes = b""  # the dictionary, without /DecodeParms


@dataclass(slots=True)
class PdfWriter:
    """Objects in order; ``finish`` writes the catalog, the cross-reference table and the trailer."""

    objects: list[bytes] = field(default_factory=lambda: [b""])  # 1: the page tree, set by finish
    pages: list[int] = field(default_factory=list)
    _font: int | None = None

    def set(self, num: int, body: bytes) -> None:
        self.objects[num - 1] = body

    def add(self, body: bytes) -> int:
        self.objects.append(body)
        return len(self.objects)

    def add_stream(self, entries: bytes, data: bytes) -> int:
        return self.add(b"<< " + entries + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")

    def font(self) -> int:
        """The Type0 glyphless font (embedded once per document)."""
        if self._font is None:
            self._font = _add_font(self)
        return self._font

    def add_image(self, img: ImageStream) -> int:
        parms = b" /DecodeParms << " + img.decode_parms + b" >>" if img.decode_parms else b""
        entries = b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s " % (
            img.width,
            img.height,
            img.colorspace,
        ) + b"/BitsPerComponent %d /Filter %s%s" % (img.bits, img.filter, parms)
        return self.add_stream(entries, img.data)

    def add_page(self, size: tuple[float, float], content: bytes, image: int | None, rotate: int = 0) -> None:
        """A page of ``size`` points whose content draws ``/Im0`` (when given) and sets text in ``/F0``."""
        stream = self.add_stream(b"/Filter /FlateDecode", zlib.compress(content, 6))
        xobjects = b" /XObject << /Im0 %d 0 R >>" % image if image is not None else b""
        resources_ = b"<< /Font << /F0 %d 0 R >>%s >>" % (self.font(), xobjects)
        rot = b" /Rotate %d" % rotate if rotate else b""
        self.pages.append(
            self.add(
                b"<< /Type /Page /Parent 1 0 R /MediaBox [0 0 %s %s] /Resources %s /Contents %d 0 R%s >>"
                % (num(size[0]), num(size[1]), resources_, stream, rot)
            )
        )

    def finish(self, created: str, title: str) -> bytes:
        """The whole file: PDF/A-2b identification (XMP), the sRGB output intent, a content-derived ID."""
        kids = b" ".join(b"%d 0 R" % p for p in self.pages)
        self.set(1, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.pages)))
        xmp = _xmp(created, title)
        meta = self.add_stream(b"/Type /Metadata /Subtype /XML", xmp)
        icc = self.add_stream(b"/N 3 /Filter /FlateDecode", zlib.compress(_srgb_profile(), 9))
        intent = self.add(
            b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB IEC61966-2.1) "
            b"/Info (sRGB IEC61966-2.1) /DestOutputProfile %d 0 R >>" % icc
        )
        catalog = self.add(
            b"<< /Type /Catalog /Pages 1 0 R /Metadata %d 0 R /OutputIntents [%d 0 R] >>" % (meta, intent)
        )
        out = io.BytesIO()
        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        digest = hashlib.sha256()
        for i, body in enumerate(self.objects, start=1):
            offsets.append(out.tell())
            chunk = b"%d 0 obj\n" % i + body + b"\nendobj\n"
            digest.update(chunk)
            out.write(chunk)
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1))
        for off in offsets:
            out.write(b"%010d 00000 n \n" % off)
        doc_id = digest.hexdigest()[:32].encode()
        out.write(
            b"trailer\n<< /Size %d /Root %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(self.objects) + 1, catalog, doc_id, doc_id, xref)
        )
        return out.getvalue()


def num(value: float) -> bytes:
    """A PDF real: at most 4 decimals, no exponent, no trailing zeros."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return (text if text not in ("-0", "") else "0").encode()


def _add_font(w: PdfWriter) -> int:
    font_file = resources.files("chartvault.ocr").joinpath("data/glyphless.ttf").read_bytes()
    ff = w.add_stream(b"/Length1 %d" % len(font_file), font_file)
    descriptor = w.add(
        b"<< /Type /FontDescriptor /FontName /%s /Flags 5 /FontBBox [0 0 500 1000] /ItalicAngle 0 "
        b"/Ascent 1000 /Descent 0 /CapHeight 1000 /StemV 80 /FontFile2 %d 0 R >>" % (_FONT_NAME, ff)
    )
    # Every CID (a UTF-16 code unit) draws glyph 1, the font's one empty glyph.
    cid_to_gid = w.add_stream(b"/Filter /FlateDecode", zlib.compress(b"\x00\x01" * 65536, 9))
    cid_font = w.add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /%s "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor %d 0 R /DW 500 /CIDToGIDMap %d 0 R >>" % (_FONT_NAME, descriptor, cid_to_gid)
    )
    to_unicode = w.add_stream(b"/Filter /FlateDecode", zlib.compress(_TO_UNICODE, 9))
    return w.add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (_FONT_NAME, cid_font, to_unicode)
    )


def _srgb_profile() -> bytes:
    """sRGB IEC61966-2.1 as LittleCMS makes it, saved once: a profile made now would carry today's
    date in its header and make every rendition's bytes (and so its key) depend on when it was built."""
    return resources.files("chartvault.ocr").joinpath("data/sRGB.icc").read_bytes()


def _xmp(created: str, title: str) -> bytes:
    """XMP naming the file PDF/A-2 level B (the only metadata: no Info dictionary to keep in step)."""
    safe = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/"
    xmlns:dc="http://purl.org/dc/elements/1.1/">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
   <xmp:CreateDate>{created}</xmp:CreateDate>
   <xmp:ModifyDate>{created}</xmp:ModifyDate>
   <xmp:CreatorTool>ChartVault</xmp:CreatorTool>
   <pdf:Producer>ChartVault</pdf:Producer>
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{safe}</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return body.encode("utf-8")
