"""Pictures: m.picture, kiln show, kiln freeze --picture; SVGs parsed as XML
and checked for every node."""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import onnx
import pytest

import kiln

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def svg_groups(path, cls, titles=False):
    """Text of each <g class=cls> (a node, a cluster's label), with the
    group's <title> (the DOT id) when titles."""
    root = ET.parse(path).getroot()  # well-formed XML
    assert root.tag == SVG + "svg"
    out = []
    for g in root.iter(SVG + "g"):
        if g.get("class") == cls:
            text = " ".join(t.text or "" for t in g.iter(SVG + "text"))
            title = g.find(SVG + "title")
            out.append((title.text if title is not None else "", text) if titles else text)
    return out


def all_nodes(graph):
    """Every node of an onnx graph, subgraphs included."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_nodes(a.g)
            for g in a.graphs:
                yield from all_nodes(g)


def assert_every_node_drawn(svg, model_path, extra=()):
    texts = svg_groups(svg, "node")
    proto = onnx.load(model_path)
    for n in all_nodes(proto.graph):
        assert any(n.op_type in t and n.name in t for t in texts), f"{n.op_type} '{n.name}' is not in {svg}"
    for v in proto.graph.input:
        assert any(v.name in t for t in texts), v.name
    for v in list(proto.graph.output) + list(extra):
        assert any(getattr(v, "name", v) in t for t in texts)
    return texts


@needs_dot
def test_picture_svg_every_node(models, tmp_path):
    m = kiln.load(models.net)
    out = tmp_path / "net.svg"
    dot = m.picture(str(out))
    assert dot.startswith("digraph")
    texts = assert_every_node_drawn(str(out), models.net)
    # output shapes with the symbolic batch; initializers inside their consumer's box
    conv = next(t for t in texts if "Conv" in t)
    assert "float32[batch,8,32,32]" in conv
    proto = onnx.load(models.net)
    weight = next(n for n in proto.graph.node if n.op_type == "Conv").input[1]
    assert f"{weight}: float32[8,3,3,3]" in conv
    assert not any(t.strip().startswith(weight) for t in texts)  # no box of its own
    assert "float32[batch,10]" in next(t for t in texts if "Gemm" in t)


@needs_dot
def test_picture_subgraphs_are_clusters(models, tmp_path):
    out = tmp_path / "cfg.svg"
    kiln.load(models.example).picture(out)
    assert_every_node_drawn(str(out), models.example)
    clusters = svg_groups(str(out), "cluster")
    assert any("then_branch" in c for c in clusters) and any("else_branch" in c for c in clusters)
    out = tmp_path / "loop.svg"
    kiln.load(models.loop).picture(out)
    assert_every_node_drawn(str(out), models.loop)
    assert any("body" in c for c in svg_groups(str(out), "cluster"))


@needs_dot
def test_freeze_picture_marks_and_legend(models, tmp_path):
    m = kiln.load(models.example)
    m.freeze(bind={"scale": 2.0, "bias": 0.5, "use_mult": True}, dims={"batch": 1})
    out = tmp_path / "freeze.svg"
    m.picture(out, original=True)
    clusters = svg_groups(str(out), "cluster")
    assert any(c.startswith("original") for c in clusters) and any(c.startswith("frozen") for c in clusters)
    assert any(c.startswith("legend") for c in clusters)
    legend = " ".join(t for i, t in svg_groups(str(out), "node", titles=True) if i.startswith("legend_"))
    for word in ("kept", "folded into a constant", "removed", "bound input", "batch=1"):
        assert word in legend
    texts = svg_groups(str(out), "node")
    assert any("scale" in t and "bound" in t for t in texts)
    assert any("If" in t and "removed" in t for t in texts)
    # every node of both models is there
    m.save(tmp_path / "frozen.onnx")
    assert_every_node_drawn(str(out), models.example)
    assert_every_node_drawn(str(out), str(tmp_path / "frozen.onnx"))
    # the CLI's picture is the same drawing
    r = subprocess.run([sys.executable, "-m", "kiln", "freeze", models.example, "-o", str(tmp_path / "f2.onnx"),
                        "--bind", "scale=2.0", "--bind", "bias=0.5", "--bind", "use_mult=true", "--dim", "batch=1",
                        "--picture", str(tmp_path / "cli.svg"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(svg_groups(str(tmp_path / "cli.svg"), "node")) == len(texts)


@needs_dot
def test_freeze_picture_folded_chain(models, tmp_path):
    """The Shape -> Gather -> Unsqueeze -> Concat chain PyTorch writes for a
    reshape folds into a constant once the batch is fixed: drawn as folded."""
    m = kiln.load(models.net)
    m.freeze(shapes={"x": [1, 3, 32, 32]})
    out = tmp_path / "net.svg"
    m.picture(out, original=models.net)
    texts = [t for i, t in svg_groups(str(out), "node", titles=True) if i.startswith("o_")]
    for op in ("Shape", "Gather", "Concat"):
        assert any(t.startswith(op) and "folded into a constant" in t for t in texts), op
    for op in ("Conv", "Gemm"):
        assert any(t.startswith(op) and "folded" not in t and "removed" not in t for t in texts), op


def test_dot_text_without_graphviz(models, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    out = tmp_path / "net.dot"
    dot = kiln.load(models.net).picture(out)
    assert out.read_text() == dot and "->" in dot
    with pytest.raises(kiln.Error, match="graphviz"):
        kiln.load(models.net).picture(tmp_path / "net.svg")
    exe = os.path.join(os.path.dirname(kiln.__file__), "_bin", "kiln")
    r = subprocess.run([exe, "show", models.net, "-o", str(tmp_path / "x.svg")], capture_output=True, text=True,
                       env={"PATH": str(tmp_path)})
    assert r.returncode == 1 and "graphviz" in r.stderr and not (tmp_path / "x.svg").exists()
    r = subprocess.run([exe, "show", models.net, "-o", str(tmp_path / "x.dot")], capture_output=True, text=True,
                       env={"PATH": str(tmp_path)})
    assert r.returncode == 0 and (tmp_path / "x.dot").read_text().startswith("digraph")
    with pytest.raises(kiln.ArgumentError):
        kiln.load(models.net).picture(tmp_path / "net.jpg")


def test_show_help_and_errors(models, tmp_path):
    r = subprocess.run([sys.executable, "-m", "kiln", "show", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: kiln show MODEL -o FILE" in r.stdout and "graphviz" in r.stdout
    r = subprocess.run([sys.executable, "-m", "kiln", "--help"], capture_output=True, text=True)
    assert "show" in r.stdout
    r = subprocess.run([sys.executable, "-m", "kiln", "show", models.net], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "kiln", "show", models.net, "-o", str(tmp_path / "x.bmp")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and ".svg" in r.stderr
