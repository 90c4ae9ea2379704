"""Writes the small CSV fixtures of the evaluation stream loaders (src/eval/data/camels-csv.ts) under
test/fixtures/eval/, in the layouts the CaMeLS/MAC data files have (mac-reference 4.2, 4.4), quoted as pandas'
DataFrame.to_csv writes them (Python csv, QUOTE_MINIMAL, doubled quotes, '\\n' line ends).

  streamingqa-test.csv  df.to_csv(path) of a StreamingQA split: pandas' unnamed index column first, then question,
                        answers (joined by a literal backslash) and text; documents repeat across rows.
  archivalqa-test.csv   the CaMeLS ArchivalQA_processing notebook's output (to_csv(index=False)): the ArchivalQA
                        columns question, answer, para_id, then the merged NYT columns doc_id, title, date, text
                        (the paragraph list's repr), para_num, ans_paragraph, ans_text, year.
  streamingqa-bad.csv   a record with a missing field after a multi-line quoted one.

Run from the repository root: python reference/make_eval_csv_fixtures.py
"""
import csv
import os

OUT = "test/fixtures/eval"


def write(name, header, rows):
    with open(os.path.join(OUT, name), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


PIE = (
    'Mary Berry won the "Best Pie" contest, held in York, in 2019.\n'
    "The judges, three bakers from Leeds, were unanimous; the pie used apples, pears and quince."
)
BRIDGE = "The new bridge over the Tyne, which cost 40 million pounds, opened on 3 March 2020."
CAFE = "Caf\u00e9 Na\u00efve, a bakery in Lyon, closed in 2018 after 40 years."

write(
    "streamingqa-test.csv",
    ["", "question", "answers", "text"],
    [
        [0, 'Who won the "Best Pie" contest in 2019?', "Mary Berry\\Berry", PIE],
        [1, "When did the new bridge over the Tyne open?", "3 March 2020\\March 2020", BRIDGE],
        [2, "Where was the Best Pie contest held?", "York", PIE],
        [3, "  In which city was Caf\u00e9 Na\u00efve?  ", "Lyon", CAFE],
        [4, "How much did the Tyne bridge cost?", "40 million pounds", BRIDGE],
    ],
)

NYT_A = [
    "WASHINGTON, Jan. 4 -- The Senate voted 62 to 38 on Tuesday to approve the budget.",
    'Senator Ann Cole said the vote was "a fair compromise, at last."',
    "The bill now goes to the House, where a vote is expected in March.",
]
NYT_B = [
    "BOSTON, May 2 -- The Red Sox beat the Yankees, 5-3, at Fenway Park.",
    "The winning pitcher, Luis Ortega, struck out nine batters.\nHe has won four straight starts.",
]


def arch_row(question, answer, doc_id, paras, para_num, title, date):
    return [
        question,
        answer,
        f"{doc_id}_{para_num}",
        doc_id,
        title,
        date,
        repr(paras),
        para_num,
        paras[para_num],
        "\n".join(paras),
        date.split("-")[0],
    ]


write(
    "archivalqa-test.csv",
    ["question", "answer", "para_id", "doc_id", "title", "date", "text", "para_num", "ans_paragraph", "ans_text",
     "year"],
    [
        arch_row("How did the Senate vote on the budget?", "62 to 38", "1615001", NYT_A, 0, "Senate Passes Budget",
                 "2004-01-04"),
        arch_row("What did Ann Cole call the vote?", "a fair compromise", "1615001", NYT_A, 1, "Senate Passes Budget",
                 "2004-01-04"),
        arch_row("Who beat the Yankees at Fenway Park?", "the Red Sox", "1615002", NYT_B, 0, "Red Sox Win",
                 "2004-05-02"),
        arch_row("When is the House vote expected?", "March", "1615001", NYT_A, 2, "Senate Passes Budget",
                 "2004-01-04"),
        arch_row("Where did the Senate vote take place?", "Washington", "1615001", NYT_A, 0, "Senate Passes Budget",
                 "2004-01-04"),
        arch_row("How many batters did Luis Ortega strike out?", "nine", "1615002", NYT_B, 1, "Red Sox Win",
                 "2004-05-02"),
    ],
)

with open(os.path.join(OUT, "streamingqa-bad.csv"), "w", newline="", encoding="utf-8") as f:
    f.write(',question,answers,text\n0,Who won?,Mary Berry,"Mary Berry won,\nin York."\n1,Where?,York\n')
