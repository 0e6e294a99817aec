"""The ``linear`` strategy run over Mitogen, or plain ``linear`` where Mitogen is not installed.

Mitogen keeps one Python interpreter per host for the whole run instead of sending every
module over a new SSH session; a no-change ``site.yml`` takes about a third less time. Its
own strategy plugins live inside its package, whose path depends on the Python version, so
ansible.cfg points here instead. ``ANSIBLE_STRATEGY=linear`` turns it off for one run.
"""

from __future__ import annotations

import functools

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError:  # an Ansible without the controller extra: plain linear, and say so
    from ansible.plugins.strategy.linear import StrategyModule as _Linear
    from ansible.utils.display import Display

    Display().warning("Mitogen is not installed (pip install mitogen): using the linear strategy")

    class StrategyModule(_Linear):
        pass

else:
    import ansible_mitogen.module_finder

    def _memoize_module_scans(finder=ansible_mitogen.module_finder) -> None:
        """Compile each module_utils file once per run, not once per module that imports it.

        Before a module's first use, Mitogen finds the module_utils it needs by compiling the
        module and, breadth first, every file it imports: basic.py and its tree are compiled
        again for file, user, template and each other module. Mitogen's service does that one
        module at a time, while the first task using the module waits on every host. A code
        object and the imports read from it depend only on the source, so one cache serves all
        the modules of a run.
        """
        if not hasattr(finder, "walk_imports"):  # another Mitogen: leave it as it is
            return
        walk = finder.walk_imports

        @functools.cache
        def walk_imports(code, prefix=None):
            return tuple(walk(code, prefix))

        finder.compile = functools.cache(compile)
        finder.walk_imports = walk_imports

    _memoize_module_scans()
    _Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        pass
