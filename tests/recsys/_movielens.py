"""A tiny ML-100K `u.data` for exact checks of the readers and splits."""


def write_udata(tmp_path, rows, info=None):
    (tmp_path / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    if info:
        (tmp_path / "u.info").write_text(f"{info[0]} users\n{info[1]} items\n{len(rows)} ratings\n")
    return tmp_path


ROWS = [(1, 1, 5, 100), (1, 3, 3, 300), (2, 2, 4, 50), (1, 2, 1, 300), (3, 1, 2, 10), (2, 4, 5, 60)]
