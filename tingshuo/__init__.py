"""The ``tingshuo`` console script, the one layer above all others (streaming < models < thinking
< server < benchmarks < tingshuo): it joins the server's commands and the benchmark clients."""
