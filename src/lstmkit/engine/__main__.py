"""``python -m lstmkit.engine``: build (or find in the cache) the compiled engine and say where it is."""
import json

from . import build, load, mode

if __name__ == "__main__":
    module = load()
    print(json.dumps({"mode": mode(), "available": module is not None, "cflags": build.cflags(), **build.last_build},
                     indent=1))
