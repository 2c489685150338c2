"""The README's library example runs as written (at a few steps)."""

import pathlib
import re

README = pathlib.Path(__file__).parent.parent / 'README.md'


def test_library_example_runs(capsys):
    text = README.read_text()
    block = re.search(r'## Using the library.*?```python\n(.*?)```', text,
                      re.S).group(1)
    assert 'num_steps=2000' in block  # the paper's value in the README
    code = block.replace('num_steps=2000', 'num_steps=30')
    exec(compile(code, 'README.md', 'exec'), {})
    out = capsys.readouterr().out.strip().splitlines()
    assert sum('task 5/5' in line for line in out) == 1  # progress
    printed = out[-1]
    values = [float(v) for v in re.findall(r'[\d.]+', printed)]
    assert len(values) == 5  # one average accuracy per seed
    # Class-IL with SI's default strength: near 1/5 after five tasks
    assert all(0.1 < v < 0.5 for v in values), printed
