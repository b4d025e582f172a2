from bench.suite import cli

cli()
