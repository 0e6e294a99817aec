"""The container lab: one systemd-nspawn machine per inventory host, on a private bridge.

Ansible reaches lab hosts over SSH at their inventory addresses, exactly as it reaches team
laptops, so everything rehearsed in the lab is what runs on real machines.
"""
