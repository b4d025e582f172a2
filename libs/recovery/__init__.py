"""Recovering a lost Kafka log from outside the services: the operator's procedure, as code.

Services do not heal a lost log themselves; they report it (NOT_SERVING, the
`podium_log_lost` metric, one log line) and stop. With the services stopped,
the steps below bring the log back, and the services are then started again
(docs/operations.md, "Lost log"). Each step is a module, and a `podium log`
command:

- `topics`: every topic, with the right partition count (`podium log topics`);
- `reseed`: its topics emptied, every event stored in PostgreSQL published
  again, in order (`podium log reseed`);
- `readers`: every reader of the log starts from the beginning again: consumer
  groups reset, faust changelogs emptied, positions stored in PostgreSQL
  forgotten (`podium log reset-groups`);
- `libs.projection.operations.request_rebuild`: every durable view rebuilt
  (`podium views rebuild`).

`procedure.recover` runs them in that order (`podium log recover`); the dev
stack's supervisor runs the same function when its embedded broker dies.
"""
