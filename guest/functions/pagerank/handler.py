"""pagerank (SPEC.md §4): PageRank of a random Barabasi-Albert graph with igraph.

read: an undirected graph of `size` vertices, each new one attaching 10 edges (unseeded);
process: Graph.pagerank() with the defaults (damping 0.85, PRPACK). With `verify` = "1" (tests)
the result includes the edge list and all ranks, so a test can recompute them.
"""

import igraph

EDGES_PER_VERTEX = 10


def handle(params, ctx):
    size = int(params["size"])
    graph = igraph.Graph.Barabasi(size, EDGES_PER_VERTEX)
    ctx.t1()
    ranks = graph.pagerank()
    ctx.t2()
    top = max(range(len(ranks)), key=ranks.__getitem__)
    result = {
        "vertices": graph.vcount(),
        "edges": graph.ecount(),
        "rank_sum": sum(ranks),
        "top_vertex": top,
        "top_rank": ranks[top],
    }
    if str(params.get("verify", "0")) == "1":
        result["edge_list"] = graph.get_edgelist()
        result["ranks"] = ranks
    return result
