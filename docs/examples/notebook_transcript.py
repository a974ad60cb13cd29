"""Execute docs/examples/side_by_side.ipynb headless (nbclient, this interpreter's kernel) and
print what each code cell showed, as the executed notebook stores it: stream text, the
``text/plain`` of displays (ANSI colours removed), widgets resolved through the notebook's
widget state (a progress bar's description, value/max, style and label; an Output widget's
own outputs), and figures (saved as small PNGs).

    .venv/bin/python docs/examples/notebook_transcript.py [--img-dir docs/img] [--save run.ipynb]

The temporary run directory in paths is shown as ``<work>``.
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WORK = re.compile(r"/tmp/side-by-side-[A-Za-z0-9_]+")
VIEW = "application/vnd.jupyter.widget-view+json"


def clean(text: str) -> str:
    """Without ANSI colours, the run directory as <work>, no trailing blanks."""
    text = WORK.sub("<work>", ANSI.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines())


def describe_widget(model_id: str, state: dict[str, Any], indent: str = "") -> list[str]:
    """The widget as stored in the notebook's widget state, in words."""
    model = state.get(model_id)
    if model is None:
        return [f"{indent}[widget {model_id}: not in the stored widget state]"]
    name, s = model["model_name"], model["state"]
    if name == "HBoxModel":
        out = [f"{indent}[HBox]"]
        for child in s.get("children", []):
            out += describe_widget(child.removeprefix("IPY_MODEL_"), state, indent + "  ")
        return out
    if name in ("IntProgressModel", "FloatProgressModel"):
        style = s.get("bar_style") or "none"
        return [
            f"{indent}[{name[:-5]} description={s.get('description')!r} "
            f"value={s.get('value')} max={s.get('max')} bar_style={style}]"
        ]
    if name == "HTMLModel":
        return [f"{indent}[HTML] {s.get('value', '')}"]
    if name == "OutputModel":
        out = [f"{indent}[Output widget, {len(s.get('outputs', []))} output(s)]"]
        for o in s.get("outputs", []):
            text = o.get("data", {}).get("text/plain", o.get("text", ""))
            out += [indent + "  " + line for line in clean(text).splitlines()]
        return out
    return [f"{indent}[{name}]"]


def save_png(data: str, path: Path) -> str:
    """A small palette PNG of the figure; returns its size in words."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(data)))
    small = img.convert("RGB").quantize(colors=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)
    return f"{img.width}x{img.height} px, {path.stat().st_size // 1024} KB"


def transcript(nb: Any, img_dir: Path | None) -> str:
    """Every code cell's outputs in order, as text."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    state = state.get("state", {})
    lines: list[str] = []
    figure = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.outputs:
            continue
        lines.append(f"### cell {index}: {cell.source.splitlines()[-1]}")
        for out in cell.outputs:
            kind = out.output_type
            if kind == "stream":
                lines.append(f"[{out.name}]")
                lines += clean(out.text).splitlines()
            elif kind == "error":
                lines.append(f"[error] {out.ename}: {out.evalue}")
            elif kind in ("display_data", "execute_result"):
                data = out.data
                if "image/png" in data:
                    figure += 1
                    where = ""
                    if img_dir is not None:
                        path = img_dir / f"notebook-side-by-side-{figure}.png"
                        where = f", saved as {path.name} ({save_png(data['image/png'], path)})"
                    lines.append(f"[{kind}: image/png{where}]")
                elif VIEW in data:
                    lines.append(f"[{kind}: widget; text/plain: {clean(data['text/plain'])}]")
                    lines += describe_widget(data[VIEW]["model_id"], state, "  ")
                else:
                    kinds = ", ".join(data)
                    lines.append(f"[{kind}: {kinds}]")
                    lines += clean(data.get("text/plain", "")).splitlines()
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notebook", type=Path, default=HERE / "side_by_side.ipynb")
    parser.add_argument("--img-dir", type=Path, default=None, help="save the figures here")
    parser.add_argument("--save", type=Path, default=None, help="write the executed notebook")
    args = parser.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.notebook.parent)}},
    )
    client.execute()
    if args.save is not None:
        nbformat.write(nb, args.save)
    print(transcript(nb, args.img_dir))
    print(f"(executed in {time.perf_counter() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
