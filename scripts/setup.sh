#!/usr/bin/env bash
# Install what ChartVault needs on a fresh Debian machine, idempotently:
# Debian's tesseract (eng + osd) and a .venv with the project at the pinned versions.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh test     runtime + test dependencies (and Debian's chromium for the browser tests,
#                             driven by the pinned playwright package: never `playwright install`)
#   scripts/setup.sh bench    runtime + test + benchmark-only dependencies (OCRmyPDF, for bench.pipeline)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
case "${1:-}" in
  test) extras="[test]" ;;
  bench) extras="[test,bench]" ;;
esac

need_apt=()
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)
for lang in eng osd; do
  [ -f "/usr/share/tesseract-ocr/5/tessdata/${lang}.traineddata" ] || need_apt+=("tesseract-ocr-${lang}")
done
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v make >/dev/null 2>&1 || need_apt+=(make)
if [ "${1:-}" = "test" ]; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
fi
# bench: OCRmyPDF 17 needs nothing more from apt: it runs the tesseract above, rasterises with pypdfium2
# and writes PDF/A with pikepdf (Ghostscript is only its optional fallback, and would change what is
# measured), so only the Python extra is added.
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing Python packages (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}"
  touch "$stamp"
fi
# Bytecode for the package itself: where PYTHONDONTWRITEBYTECODE is set, every command would otherwise
# compile every module it imports, each time it starts.
.venv/bin/python -m compileall -q chartvault
