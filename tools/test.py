"""Test (and evaluate) a checkpoint of an MMPretrain config with mmengine's Runner.

Same arguments as MMPretrain's ``tools/test.py``:

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options ...]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]

A mistake in the config, the checkpoint, the data or a flag ends it before the first image with one
line on stderr and exit status 2, leaving nothing in the work directory.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import se_plugins  # noqa: F401  registers se_cfg and the SE models
from se_plugins.cli import ArgumentParser, InputError, about, run
from se_plugins.extras import required
from se_plugins.io import check_output, read_checkpoint, state_dict_of, write_atomic

with required('test.py'):
    import mmengine
    from mmengine.config import Config
    from mmengine.evaluator import DumpResults
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from se_plugins.engine import checks, setup


# What --out may be called: DumpResults writes a pickle; mmengine.dump picks the format by suffix.
OUT_SUFFIXES = {'pred': ('.pkl', '.pickle'), 'metrics': ('.json', '.yaml', '.yml', '.pkl', '.pickle')}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (MMPretrain's arguments)."""
    parser = ArgumentParser(prog='test.py', description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='the file to write results to')
    parser.add_argument('--out-item', choices=['metrics', 'pred'],
                        help='write the metrics or the predictions (default) to --out')
    parser.add_argument(
        '--cfg-options', nargs='+', action=checks.CfgOptions,
        help='override config settings, e.g. test_dataloader.batch_size=64')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision test')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in dataloaders')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    suffixes = OUT_SUFFIXES[args.out_item or 'pred']
    if args.out is not None and not args.out.endswith(suffixes):
        what = 'metrics' if args.out_item == 'metrics' else 'predictions'
        parser.error(f'--out {args.out!r}: the {what} are written as {", ".join(suffixes)}; name the file so')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into ``cfg`` as MMPretrain's tool does."""
    if args.work_dir == '':
        raise InputError("--work-dir '': empty; give the folder for the evaluation metrics")
    checks.check_launcher(args.launcher)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        checks.check_amp_device()
        cfg.test_cfg.fp16 = True
    if args.cfg_options is not None:
        if 'load_from' in args.cfg_options:
            raise InputError('--cfg-options load_from: test.py tests the weights of CHECKPOINT; give them as '
                             'CHECKPOINT instead')
        checks.merge_cfg_options(cfg, args.cfg_options)
    cfg.load_from = args.checkpoint
    checks.check_config_values(cfg, ('test_dataloader', ))
    checks.set_dataloader_defaults(cfg, ('test_dataloader', ), pin_memory=not args.no_pin_memory)
    checks.check_data_roots(cfg, ('test_dataloader', ))
    flag = '--work-dir' if args.work_dir else 'work_dir'
    check_output(cfg.work_dir, flag, folder=True)
    checks.check_work_dir(cfg, args.config, flag)
    if args.out is not None:
        check_output(args.out, '--out')
        for name, path in (('CONFIG', args.config), ('CHECKPOINT', args.checkpoint)):
            if os.path.exists(args.out) and os.path.exists(path) and os.path.samefile(args.out, path):
                raise InputError(f'--out {args.out!r}: is {name}, which the results would overwrite; '
                                 'write them to another file')
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Test the checkpoint and return the metrics; a bad input raises :class:`~se_plugins.cli.InputError`."""
    args = parse_args(argv)
    cfg = merge_args(checks.read_config(args.config, checks.TEST_KEYS), args)
    setup(cfg)  # lets the checkpoint's mmengine objects load
    with about('CHECKPOINT'):
        saved = read_checkpoint(args.checkpoint)
        weights = state_dict_of(saved, args.checkpoint)
    meta = saved.get('meta') if isinstance(saved.get('meta'), dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes') if isinstance(meta.get('dataset_meta'), dict) else None
    with checks.Preflight(args.config, cfg.work_dir) as preflight:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        checks.check_checkpoint_fits(runner.model, weights, f'CHECKPOINT: {args.checkpoint}')
        del weights, saved
        runner.register_hook(checks.DatasetCheckHook(preflight.keep, preflight.started, classes),
                             priority='VERY_HIGH')
        if args.out and args.out_item in ('pred', None):
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
        metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        data = mmengine.dump(metrics, file_format=osp.splitext(args.out)[1][1:])
        write_atomic(args.out, lambda f: f.write(data if isinstance(data, bytes) else data.encode()))
    return metrics


if __name__ == '__main__':
    run(main, 'test.py')
