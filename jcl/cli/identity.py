"""A run's identity: the hash of what decides its numbers, and how two
configurations differ (a results folder refuses a different run).

>>> config_hash({'seeds': 3, 'log': ['csv']}) == config_hash({'seeds': 3})
True
>>> config_diff({'lr': 0.1, 'seeds': 3}, {'lr': 0.2, 'seeds': 3})
'lr: 0.1 -> 0.2'
"""

import hashlib
import json

# where the data lie, the hash itself, and the command that made the run
# (the same run is typed in many ways) do not decide its numbers
_NOT_HASHED = ('data_dir', 'hash', 'command', 'checkpoint_every', 'log',
               'log_every')


def config_hash(cfg) -> str:
    """A short hash of everything that decides a run's numbers."""
    text = json.dumps({k: v for k, v in cfg.items()
                       if k not in _NOT_HASHED}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_diff(old, new, most=3) -> str:
    """The first few settings in which two configs differ, as
    ``key: old -> new`` (nested keys joined with '.')."""
    def flat(d, prefix=''):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f'{prefix}{k}.'))
            else:
                out[f'{prefix}{k}'] = v
        return out
    a = flat({k: v for k, v in old.items() if k not in _NOT_HASHED})
    b = flat({k: v for k, v in new.items() if k not in _NOT_HASHED})
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    parts = [f'{k}: {a.get(k, "unset")} -> {b.get(k, "unset")}'
             for k in keys[:most]]
    if len(keys) > most:
        parts.append(f'and {len(keys) - most} more')
    return ', '.join(parts)
