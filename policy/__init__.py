"""meshburst's policy pack (run it with `pulumi preview --policy-pack policy/`) and the rules its gates share.

`exceptions.py` and `gcp_controls.py` use the standard library alone, so the Pulumi program and the test
suite import them too; the rule modules and `pack.py` need pulumi-policy (policy/requirements.txt).
"""
