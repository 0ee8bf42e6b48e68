"""hello: the bare invocation path (the paper's `hello` is `exec` with an empty script)."""


def handle(params, ctx):
    ctx.t1()
    name = params.get("name", "world") if isinstance(params, dict) else "world"
    result = {"greeting": "Hello, %s!" % name, "params": params}
    ctx.t2()
    return result
