"""Documents the code cites exist in the repository, with the sections named."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [path for folder in ("convaccel", "hw", "golden", "sim", "scripts")
           for path in (ROOT / folder).rglob("*.py")]
#: ``docs/name.md`` optionally followed by ``, "Section"``.
CITATION = re.compile(r'(docs/[\w./-]+\.md)(?:,\s*"([^"]+)")?')


def headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines()
            if line.startswith("#")}


def test_every_cited_document_and_section_exists():
    cited = 0
    for source in SOURCES:
        text = " ".join(source.read_text().split())     # citations may wrap lines
        for document, section in CITATION.findall(text):
            cited += 1
            target = ROOT / document
            assert target.is_file(), f"{source.name} cites {document}, which does not exist"
            if section:
                assert section in headings(target), f"{source.name}: no {section!r} in {document}"
    assert cited >= 6   # the golden models cite the arithmetic contract


def test_nothing_cites_files_outside_the_repository():
    for source in SOURCES + [ROOT / "README.md"]:
        text = source.read_text()
        assert "DESIGN.md" not in text and "../shared" not in text, source
