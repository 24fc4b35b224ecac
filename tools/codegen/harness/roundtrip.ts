// Round trip through the generated TypeScript models: quicktype's Convert (which checks types at run time)
// and Modelina's unmarshal/marshal. Also matches strings against the amount pattern with ECMA-262 RegExp.
// Input and output: one JSON object per line. Copied next to the generated code by test_codegen.py.
import * as readline from "node:readline";
import { Convert } from "./qt/contracts";
import { Command } from "./mdl/Command";
import { DeadLetter } from "./mdl/DeadLetter";
import { Result } from "./mdl/Result";
import { ReviewDecision } from "./mdl/ReviewDecision";
import { ReviewRecord } from "./mdl/ReviewRecord";

interface Request {
  id: string;
  contract?: string;
  message?: object;
  pattern?: string;
  texts?: string[];
}

const contracts: Record<string, (text: string) => string> = {
  "quicktype/command": (t) => Convert.commandToJson(Convert.toCommand(t)),
  "quicktype/result": (t) => Convert.resultToJson(Convert.toResult(t)),
  "quicktype/dead_letter": (t) => Convert.deadLetterToJson(Convert.toDeadLetter(t)),
  "quicktype/review_record": (t) => Convert.reviewRecordToJson(Convert.toReviewRecord(t)),
  "quicktype/review_decision": (t) => Convert.reviewDecisionToJson(Convert.toReviewDecision(t)),
  "modelina/command": (t) => Command.unmarshal(t).marshal(),
  "modelina/result": (t) => Result.unmarshal(t).marshal(),
  "modelina/dead_letter": (t) => DeadLetter.unmarshal(t).marshal(),
  "modelina/review_record": (t) => ReviewRecord.unmarshal(t).marshal(),
  "modelina/review_decision": (t) => ReviewDecision.unmarshal(t).marshal(),
};

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const request = JSON.parse(line) as Request;
  const answer: { id: string; encoded?: unknown; error?: string; matches?: boolean[] } = { id: request.id };
  if (request.pattern !== undefined) {
    const pattern = new RegExp(request.pattern);
    answer.matches = (request.texts ?? []).map((text) => pattern.test(text));
  } else {
    const run = contracts[request.contract ?? ""];
    try {
      if (run === undefined) throw new Error(`no such contract: ${request.contract}`);
      answer.encoded = JSON.parse(run(JSON.stringify(request.message)));
    } catch (error) {
      answer.error = String(error);
    }
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
