"""Teacher plans tidied before verification and training (``plancode.trainer.plan_tidy``): golden
cases taken from the real run's 1.5B teacher plans (distill/real/plans/plans.jsonl)."""

from __future__ import annotations

from plancode.trainer.plan_tidy import first_sentence, tidy, tidy_step

MATCHING = "\n".join([
    '1. Understand the Problem: The problem requires finding a maximum cardinality '
    'matching in an undirected graph. A matching is a set of edges such that no two '
    'edges share a common vertex.',
    '2. Model the Graph: Represent the graph using an adjacency list. Each vertex is '
    'connected to other vertices through edges.',
    '3. Initialize the Matching: Create a list `match` where each element is -1, '
    'indicating that no vertex is matched.',
    '4. Repeat: Continue the BFS process until no more augmenting paths can be found.',
    '5. Return the Result: Return the list of matched edges.',
    '6. Test the Function: Test the function with a sample graph to ensure it works as expected.',
    '7. Review and Refine: Review the implementation to ensure it meets the requirements.',
])

HEADINGS = """1. Identify the Requirements:
2. Convert the dictionary of dictionaries to a numpy array.
3. Implement the Conversion Logic:
4. Step 3: Iterate through the outer dictionary.
5. **
6. Document the Code: Add comments to the code."""


def test_meta_steps_titles_and_explanations_go() -> None:
    assert tidy(MATCHING) == (
        "1. Represent the graph using an adjacency list.\n"
        "2. Create a list `match` where each element is -1, indicating that no vertex is "
        "matched.\n"
        "3. Continue the BFS process until no more augmenting paths can be found.\n"
        "4. Return the list of matched edges.")


def test_empty_headings_step_prefixes_and_debris_go() -> None:
    assert tidy(HEADINGS) == ("1. Convert the dictionary of dictionaries to a numpy array.\n"
                              "2. Iterate through the outer dictionary.")


def test_a_sentence_end_inside_code_is_not_an_end() -> None:
    step = "Call `s.strip(). Upper()` on the text. Then return it."
    assert first_sentence(step) == "Call `s.strip(). Upper()` on the text."
    assert tidy_step("Return `x.y`: the attribute, e.g. `1.5`. More text.") == (
        "Return `x.y`: the attribute, e.g. `1.5`.")


def test_working_steps_are_kept_and_tidy_is_idempotent() -> None:
    plan = "1. Sort the items by price.\n2. Return the first `n` of them."
    assert tidy(plan) == plan and tidy(tidy(MATCHING)) == tidy(MATCHING)
    assert tidy("1. Understand the problem.\n2. Test the function.") == "", "nothing left"


def test_a_condition_before_a_colon_is_not_a_title() -> None:
    assert tidy_step("If `n` is 0: return 1.") == "If `n` is 0: return 1."
    assert tidy_step("Define the `send` Method: Define `send` on the class.") == (
        "Define `send` on the class.")
