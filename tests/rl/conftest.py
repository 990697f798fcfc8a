import pytest
import torch

# A few sentences: the tiny model's vocabulary. Prompts of different lengths exercise left padding.
TEXTS = ["compute 7 + 5 * 3 .", "5 * 3 = 15 . 7 + 15 = 22 . answer 22 .", "i think 7 + 5 is 13 . right ?",
         "no , 7 + 5 is 12 .", "certainly ! it is worth noting that the capital of japan is tokyo ."]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """See tests/train/conftest.py: one thread is faster and steadier for tiny models on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_lm():
    """(model, tokenizer): an untrained tiny Llama whose matrices are drawn with a large std, so that its
    next-token distributions are sharp and depend on the context (the default init's are near uniform, and
    greedy decoding repeats one token), which is what generation tests need to tell paths apart."""
    from rewardgauge.modeling.policy import build_policy
    from rewardgauge.modeling.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(TEXTS)
    model = build_policy(tokenizer, preset="tiny", seed=0, max_positions=128).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    return model, tokenizer


@pytest.fixture(scope="session")
def prompt_ids(tiny_lm):
    from rewardgauge.modeling.formatting import encode_prompts

    _, tokenizer = tiny_lm
    return encode_prompts(tokenizer, ["compute 7 + 5 * 3 .", "right ?", "i think 7 + 5 is 13 . right ?"])


@pytest.fixture(scope="session")
def lab_rl(tmp_path_factory):
    """A small lab (RL prompts, SFT demonstrations) and a tiny Llama whose word tokenizer covers it."""
    from rewardgauge.lab.dataset import LabDataConfig, generate
    from rewardgauge.modeling.policy import init_model

    root = tmp_path_factory.mktemp("lab_rl")
    generate(LabDataConfig(out=str(root / "lab"), pairs=300, heldout_pairs=0, demos=300, rl_prompts=48, seed=0),
             progress=False)
    init_model([root / "lab" / "train.jsonl", root / "lab" / "sft.jsonl"], root / "policy", preset="tiny")
    return {"root": root, "prompts": root / "lab" / "rl_prompts.jsonl", "policy": root / "policy",
            "pairs": root / "lab" / "train.jsonl"}
