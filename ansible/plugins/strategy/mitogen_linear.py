"""The ``linear`` strategy run over Mitogen, or plain ``linear`` where Mitogen is not installed.

Mitogen keeps one Python interpreter per host for the whole run instead of sending every
module over a new SSH session; a no-change ``site.yml`` takes about a third less time. Its
own strategy plugins live inside its package, whose path depends on the Python version, so
ansible.cfg points here instead. ``ANSIBLE_STRATEGY=linear`` turns it off for one run.
"""

from __future__ import annotations

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
    _Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        pass
