import pytest

from jaxhpo.report import Table, write_html


def test_tables_notes_and_figures_are_written_into_one_page(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = write_html(str(tmp_path / "r.html"), "Title <&>", tables=[
        Table("scores", ["model", "accuracy", "n"], [["a<b", 0.98765, 3], ["c", 1.0, 4]])],
        figures={"curve": fig}, notes=["a note"])
    page = open(path).read()
    assert "<title>Title &lt;&amp;&gt;</title>" in page
    assert "<tr><td>a&lt;b</td><td>0.9877</td><td>3</td></tr>" in page  # escaped text, formatted floats, ints as is
    assert "<p>a note</p>" in page and page.count("data:image/png;base64,") == 1
    assert matplotlib is not None


def test_bad_input_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"row 1 has 1 cells for 2 columns"):
        write_html(str(tmp_path / "r.html"), "t", tables=[Table("x", ["a", "b"], [[1, 2], [3]])])
    with pytest.raises(ValueError, match=r"figures\['f'\] must be a matplotlib Figure"):
        write_html(str(tmp_path / "r.html"), "t", figures={"f": 3})
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"figures\['f'\]: '.*notes.txt' is not a PNG file"):
        write_html(str(tmp_path / "r.html"), "t", figures={"f": str(tmp_path / "notes.txt")})
    with pytest.raises(ValueError, match=r"tables\[0\] must be a jaxhpo.report.Table"):
        write_html(str(tmp_path / "r.html"), "t", tables=[("caption", ["a"], [[1]])])


def test_a_png_file_is_embedded_as_it_is_without_drawing_again(tmp_path):
    pytest.importorskip("matplotlib")
    import base64

    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "curve.png", dpi=50)
    page = open(write_html(str(tmp_path / "r.html"), "t", figures={"curve": tmp_path / "curve.png"})).read()
    embedded = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(embedded) == (tmp_path / "curve.png").read_bytes()
