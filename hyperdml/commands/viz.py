"""``hyperdml viz``: the hierarchy report of a checkpoint (dendrograms, Poincaré disk, tree metrics)."""

from __future__ import annotations

HELP = "plot the hierarchy of a checkpoint's hyperbolic proxies (dendrogram, Poincaré disk, tree_metrics.json)"
DESCRIPTION = """Rebuild the model and loss of a checkpoint written by hyperdml train, decode a tree
from its hyperbolic proxies (HypHC single linkage on LCA depth, one leaf per class) and write to
--out: dendrogram.<fmt> (hyperbolic tree, and the Euclidean proxies' cosine tree beside it for a
dual/CHEST model; leaves coloured by super-class when the data set has a hierarchy),
poincare_disk.<fmt> (proxies, decoded tree as geodesics and up to --max-points test embeddings,
reduced to the disk by PCA in the tangent space at the origin) and tree_metrics.json (Dasgupta
cost, dendrogram purity against the super-classes). Without the data, only the proxies are
plotted. The checkpoint needs hyperbolic proxies (a hyperbolic or dual model)."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml viz``."""
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file or run folder (last.pt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and tree_metrics.json")
    parser.add_argument("--format", choices=("png", "svg"), default="png", help="image format")
    parser.add_argument("--max-points", type=int, default=2000, metavar="N",
                        help="test embeddings plotted at most (a seeded sample); 0 plots proxies only")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data folder instead of the checkpoint's")
    parser.add_argument("--device", default="cpu", help="device for the test embeddings: cpu, cuda, cuda:N or auto")


def run(args) -> int:
    from hyperdml.commands.eval import check_out_folder
    from hyperdml.errors import ConfigError

    if args.max_points < 0:
        raise ConfigError(f"--max-points must be >= 0, got {args.max_points}")
    check_out_folder(args.out)
    from hyperdml.train.distributed import resolve_device
    from hyperdml.viz.report import write_hierarchy_report

    # a run folder means its last.pt, and a missing file is a FileNotFoundError: both in the report
    result = write_hierarchy_report(args.checkpoint, args.out, fmt=args.format, max_points=args.max_points,
                                    device=str(resolve_device(args.device)), data_root=args.data_root)
    spaces = result["metrics"]["spaces"]
    for space, m in spaces.items():
        cost = m["dasgupta_cost"]
        costs = ", ".join(f"{k} {v:.4f}" for k, v in cost.items())
        purity = "n/a" if m["dendrogram_purity"] is None else f"{m['dendrogram_purity']:.4f}"
        if m.get("dendrogram_purity_shuffled") is not None:
            purity += f" (chance {m['dendrogram_purity_shuffled']:.4f})"
        print(f"{space}: {m['leaves']} leaves, dendrogram purity {purity}, Dasgupta cost (normalised) {costs}")
    for note in result["notes"]:
        print(f"note: {note}")
    for name, file in result["files"].items():
        print(f"wrote {file}")
    return 0
