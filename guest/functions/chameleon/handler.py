"""chameleon (SPEC.md §4): render a big HTML table with a Chameleon page template.

One <tr> per row, one <td> per value; each cell holds <span class="column-{v+1}">{v+1}</span>.
The table is `rows` copies of {"0": 0, ..., "cols-1": cols-1}. t1 is taken at entry: compiling
the template is in the process window. The text type's name comes from six, as in the paper.
With `verify` = "1" (tests) the result includes the rendered HTML.
"""

import hashlib

import six
from chameleon import PageTemplate

TEMPLATE = """\
<table xmlns="http://www.w3.org/1999/xhtml" xmlns:tal="http://xml.zope.org/namespaces/tal">
<tr tal:repeat="row python: options['table']">
<td tal:repeat="v python: row.values()">
<span tal:define="d python: v + 1"
      tal:attributes="class python: 'column-' + %s(d)"
      tal:content="python: d" />
</td>
</tr>
</table>""" % six.text_type.__name__


def handle(params, ctx):
    ctx.t1()
    rows = int(params["num_of_rows"])
    cols = int(params["num_of_cols"])
    template = PageTemplate(TEMPLATE)
    row = {str(i): i for i in range(cols)}
    table = [row for _ in range(rows)]
    html = template.render(options={"table": table})
    ctx.t2()
    data = html.encode("utf-8")
    result = {
        "rows": rows,
        "cols": cols,
        "html_bytes": len(data),
        "html_sha256": hashlib.sha256(data).hexdigest(),
    }
    if str(params.get("verify", "0")) == "1":
        result["html"] = html
    return result
