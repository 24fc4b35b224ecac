"""The hostile-input run: ``plan`` (the hostile messages and what each must get, pure and seeded), ``run``
(the broker, the sandbox, one worker, the verdict; ``python -m ecash_dev.hostile``). See
docs/reliability.md."""
