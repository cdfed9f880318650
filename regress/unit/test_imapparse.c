/*
 * Copyright (c) 2025 The imaprelayd authors
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * Unit tests of the pre-login IMAP command parser (src/imapparse.c).
 */

#include <stdio.h>
#include <string.h>

#include "imapparse.h"
#include "unit.h"

#define MAX	1024

static char		 scratch[MAX];
static struct imap_cmd	 cmd;
static size_t		 consumed;

/* parse s (len bytes, or strlen when len is 0) with buffer limit max */
static enum imap_parse_status
parse(const char *s, size_t len, size_t max)
{
	if (len == 0)
		len = strlen(s);
	imap_cmd_init(&cmd, scratch, max);
	return (imap_parse(&cmd, s, len, max, &consumed));
}

static int
argis(int i, enum imap_argtype type, const char *data, size_t len)
{
	if (i >= cmd.nargs || cmd.args[i].type != type ||
	    cmd.args[i].len != len)
		return (0);
	return (memcmp(cmd.args[i].data, data, len) == 0 &&
	    cmd.args[i].data[len] == '\0');
}

#define ARG(i, t, s)	argis((i), (t), (s), strlen(s))

static void
test_simple(void)
{
	CHECK("noop complete", parse("a1 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE);
	CHECK("noop tag", strcmp(cmd.tag, "a1") == 0);
	CHECK("noop name", strcmp(cmd.name, "NOOP") == 0);
	CHECK("noop no args", cmd.nargs == 0);
	CHECK("noop consumed", consumed == 9);

	CHECK("lowercase name", parse("x.Y-z_9 capability\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strcmp(cmd.name, "CAPABILITY") == 0 &&
	    strcmp(cmd.tag, "x.Y-z_9") == 0);
	CHECK("mixed case name", parse("A1 LoGiN u p\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strcmp(cmd.name, "LOGIN") == 0);
	CHECK("login atoms", parse("a1 LOGIN bob secret\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(0, IMAP_ARG_ATOM, "bob") && ARG(1, IMAP_ARG_ATOM, "secret"));
	CHECK("multiple spaces", parse("a1   LOGIN   bob    pass  \r\n", 0,
	    MAX) == IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(1, IMAP_ARG_ATOM, "pass"));
	CHECK("bare LF ends a line", parse("a1 NOOP\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && consumed == 8);
	CHECK("CR without LF is bad", parse("a1 NOOP\rX\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 11 && strcmp(cmd.tag, "a1") == 0);
	CHECK("8-bit and ] in atoms", parse("a1 LOGIN j\xc3\xbcrgen p]w%*\r\n",
	    0, MAX) == IMAP_PARSE_COMPLETE &&
	    ARG(0, IMAP_ARG_ATOM, "j\xc3\xbcrgen") &&
	    ARG(1, IMAP_ARG_ATOM, "p]w%*"));
	CHECK("tag with ]", parse("a]1 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strcmp(cmd.tag, "a]1") == 0);
	CHECK("incomplete line is more", parse("a1 NOOP", 0, MAX) ==
	    IMAP_PARSE_MORE && consumed == 0);
	CHECK("missing command", parse("a1\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    strcmp(cmd.tag, "a1") == 0 && consumed == 4 && cmd.error != NULL);
	CHECK("missing space before argument", parse("a1 LOGIN \"a\"\"b\"\r\n",
	    0, MAX) == IMAP_PARSE_BAD && strcmp(cmd.tag, "a1") == 0);
	CHECK("name too long", parse("a1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
	    0, MAX) == IMAP_PARSE_BAD && strcmp(cmd.tag, "a1") == 0);
}

static void
test_quoted(void)
{
	CHECK("quoted escapes", parse("a1 LOGIN \"us\\\"er\" \"p\\\\ss\"\r\n",
	    0, MAX) == IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(0, IMAP_ARG_QUOTED, "us\"er") &&
	    ARG(1, IMAP_ARG_QUOTED, "p\\ss"));
	CHECK("password with spaces", parse("a1 LOGIN bob \"my secret pass\""
	    "\r\n", 0, MAX) == IMAP_PARSE_COMPLETE &&
	    ARG(1, IMAP_ARG_QUOTED, "my secret pass"));
	CHECK("empty quoted", parse("a1 LOGIN \"\" x\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && ARG(0, IMAP_ARG_QUOTED, ""));
	CHECK("invalid escape", parse("a1 LOGIN \"a\\nb\" x\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 19);
	CHECK("CR in quoted", parse("a1 LOGIN \"ab\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 14);
	CHECK("unterminated quoted waits", parse("a1 LOGIN \"ab", 0, MAX) ==
	    IMAP_PARSE_MORE);
}

static void
test_literal(void)
{
	const char	*s = "a1 LOGIN {3}\r\nbob pass\r\n";

	CHECK("sync literal asks for data", parse(s, 14, MAX) ==
	    IMAP_PARSE_LITERAL && cmd.lit_offset == 14 && cmd.lit_len == 3 &&
	    cmd.lit_sync == 1 && consumed == 0);
	CHECK("sync literal partial data same offset", parse(s, 16, MAX) ==
	    IMAP_PARSE_LITERAL && cmd.lit_offset == 14);
	CHECK("sync literal data without next byte", parse(s, 17, MAX) ==
	    IMAP_PARSE_LITERAL && cmd.lit_offset == 14);
	CHECK("sync literal complete", parse(s, 0, MAX) ==
	    IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(0, IMAP_ARG_LITERAL, "bob") && ARG(1, IMAP_ARG_ATOM, "pass") &&
	    consumed == strlen(s));

	CHECK("non-sync literal complete", parse("a1 LOGIN {3+}\r\nbob {4+}\r\n"
	    "pass\r\n", 0, MAX) == IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(0, IMAP_ARG_LITERAL, "bob") &&
	    ARG(1, IMAP_ARG_LITERAL, "pass"));
	CHECK("non-sync literal partial is more", parse("a1 LOGIN {3+}\r\nbo",
	    0, MAX) == IMAP_PARSE_MORE);
	CHECK("literal with bare LF", parse("a1 LOGIN {3}\nbob x\n", 0,
	    MAX) == IMAP_PARSE_COMPLETE && ARG(0, IMAP_ARG_LITERAL, "bob"));

	CHECK("{0} sync asks for continuation", parse("a1 LOGIN {0}\r\n", 0,
	    MAX) == IMAP_PARSE_LITERAL && cmd.lit_len == 0);
	CHECK("{0} is an empty string", parse("a1 LOGIN {0}\r\n {0+}\r\n\r\n",
	    0, MAX) == IMAP_PARSE_COMPLETE && cmd.nargs == 2 &&
	    ARG(0, IMAP_ARG_LITERAL, "") && ARG(1, IMAP_ARG_LITERAL, "") &&
	    consumed == 23);

	CHECK("garbage after literal", parse("a1 LOGIN {3}\r\nbobX pass\r\n",
	    0, MAX) == IMAP_PARSE_BAD && consumed == 25 && cmd.close == 0 &&
	    strcmp(cmd.tag, "a1") == 0);
	CHECK("brace after literal", parse("a1 LOGIN {3}\r\nbob{3}\r\n",
	    0, MAX) == IMAP_PARSE_BAD);
	CHECK("NUL inside literal kept", parse("a1 LOGIN {3}\r\na\0b c\r\n",
	    21, MAX) == IMAP_PARSE_COMPLETE &&
	    argis(0, IMAP_ARG_LITERAL, "a\0b", 3));
	CHECK("literal without digits", parse("a1 LOGIN {}\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD);
	CHECK("literal with sign", parse("a1 LOGIN {-3}\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD);
	CHECK("literal header waits", parse("a1 LOGIN {12", 0, MAX) ==
	    IMAP_PARSE_MORE);
	CHECK("error after literal skips its line",
	    parse("a1 LOGIN {3}\r\nabc \"x\\q\"\r\na2 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 25);
}

static void
test_toobig(void)
{
	const char	*s;

	s = "a1 LOGIN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	CHECK("line too long", parse(s, 32, 32) == IMAP_PARSE_TOOBIG &&
	    cmd.close == 1 && strcmp(cmd.tag, "a1") == 0 &&
	    cmd.error != NULL && strstr(cmd.error, "TOOBIG") != NULL);
	CHECK("line too long tag unreadable", parse(s + 9, 32, 32) ==
	    IMAP_PARSE_TOOBIG && cmd.tag[0] == '\0');
	CHECK("long line under max is more", parse(s, 31, 32) ==
	    IMAP_PARSE_MORE);

	s = "a1 LOGIN {100}\r\na2 NOOP\r\n";
	CHECK("sync literal too big", parse(s, 0, 64) == IMAP_PARSE_TOOBIG &&
	    cmd.lit_sync == 1 && cmd.lit_len == 100 && consumed == 16 &&
	    cmd.lit_offset == 16 && cmd.close == 0 &&
	    strcmp(cmd.tag, "a1") == 0);
	CHECK("next line after sync literal too big",
	    parse(s + 16, 0, 64) == IMAP_PARSE_COMPLETE &&
	    strcmp(cmd.tag, "a2") == 0);
	CHECK("non-sync literal too big", parse("a1 LOGIN {100+}\r\n", 0, 64)
	    == IMAP_PARSE_TOOBIG && cmd.lit_sync == 0 && cmd.close == 1 &&
	    consumed == 17);
	/* 15 bytes of header, 47 of data, 2 for the CRLF: exactly 64 */
	CHECK("literal that just fits", parse("a1 LOGIN {47}\r\n", 0, 64) ==
	    IMAP_PARSE_LITERAL && cmd.lit_len == 47);
	CHECK("literal one byte over", parse("a1 LOGIN {48}\r\n", 0, 64) ==
	    IMAP_PARSE_TOOBIG);
	CHECK("literal 2^63", parse("a1 LOGIN {9223372036854775808}\r\n",
	    0, MAX) == IMAP_PARSE_TOOBIG && cmd.lit_sync == 1);
	CHECK("literal 2^64-1", parse("a1 LOGIN {18446744073709551615+}\r\n",
	    0, MAX) == IMAP_PARSE_TOOBIG && cmd.close == 1);
	CHECK("literal 20 digits", parse("a1 LOGIN {99999999999999999999}\r\n",
	    0, MAX) == IMAP_PARSE_TOOBIG);
	CHECK("literal 40 digits", parse("a1 LOGIN "
	    "{0000000000000000000099999999999999999999}\r\n", 0, MAX) ==
	    IMAP_PARSE_TOOBIG);
	CHECK("leading zeros fit", parse("a1 LOGIN {0003+}\r\nabc x\r\n", 0,
	    MAX) == IMAP_PARSE_COMPLETE && ARG(0, IMAP_ARG_LITERAL, "abc"));
	CHECK("bad line with full buffer", parse("a1 LOGIN \"\\x aaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaa", 0, 32) == IMAP_PARSE_TOOBIG && cmd.close == 1);
}

static void
test_bad(void)
{
	CHECK("invalid tag char", parse("a+1 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && cmd.tag[0] == '\0' && consumed == 10);
	CHECK("tag with *", parse("a*1 NOOP\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    cmd.tag[0] == '\0');
	CHECK("8-bit tag", parse("\xc3\xa9" "1 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && cmd.tag[0] == '\0');
	CHECK("empty line", parse("\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    cmd.tag[0] == '\0' && consumed == 2 && cmd.error != NULL);
	CHECK("leading space", parse(" a1 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && cmd.tag[0] == '\0');
	CHECK("tag 64 chars ok", parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strlen(cmd.tag) == 64);
	CHECK("tag 65 chars bad", parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && cmd.tag[0] == '\0');
	CHECK("NUL in command name", parse("a1 NO\0OP\r\n", 10, MAX) ==
	    IMAP_PARSE_BAD && consumed == 10 && strcmp(cmd.tag, "a1") == 0);
	CHECK("NUL in quoted", parse("a1 LOGIN \"a\0b\" c\r\n", 18, MAX) ==
	    IMAP_PARSE_BAD && consumed == 18);
	CHECK("NUL in tag", parse("a\0 NOOP\r\n", 9, MAX) == IMAP_PARSE_BAD &&
	    cmd.tag[0] == '\0');
	CHECK("NUL between args", parse("a1 LOGIN a \0\r\n", 14, MAX) ==
	    IMAP_PARSE_BAD);
	CHECK("bad line ending in {5+} closes",
	    parse("a1 LOGIN \"x\\q\" {5+}\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    cmd.close == 1 && consumed == 21);
	CHECK("bad line ending in {5} does not close",
	    parse("a1 LOGIN \"x\\q\" {5}\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    cmd.close == 0 && consumed == 20);
	CHECK("bad tag line ending in {5+} closes",
	    parse("a+ LOGIN {5+}\nabcde\r\n", 0, MAX) == IMAP_PARSE_BAD &&
	    cmd.close == 1 && consumed == 14);
	CHECK("bad line waits for its end", parse("a1 LOGIN \"x\\q\" {5+}", 0,
	    MAX) == IMAP_PARSE_MORE);
}

static void
test_list(void)
{
	char	 buf[512];
	int	 i;

	CHECK("id list", parse("a1 ID (\"name\" \"mutt\" \"version\" NIL)\r\n",
	    0, MAX) == IMAP_PARSE_COMPLETE && strcmp(cmd.name, "ID") == 0 &&
	    cmd.nargs == 6 && cmd.args[0].type == IMAP_ARG_LIST_OPEN &&
	    ARG(1, IMAP_ARG_QUOTED, "name") && ARG(4, IMAP_ARG_ATOM, "NIL") &&
	    cmd.args[5].type == IMAP_ARG_LIST_CLOSE);
	CHECK("id nil", parse("a1 ID NIL\r\n", 0, MAX) == IMAP_PARSE_COMPLETE
	    && cmd.nargs == 1 && ARG(0, IMAP_ARG_ATOM, "NIL"));
	CHECK("id empty list", parse("a1 ID ()\r\n", 0, MAX) ==
	    IMAP_PARSE_COMPLETE && cmd.nargs == 2);
	CHECK("id list with literal", parse("a1 ID ({4+}\r\nname {1+}\r\nx)"
	    "\r\n", 0, MAX) == IMAP_PARSE_COMPLETE && cmd.nargs == 4 &&
	    ARG(2, IMAP_ARG_LITERAL, "x"));
	CHECK("nested list", parse("a1 ID ((a))\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD);
	CHECK("unterminated list", parse("a1 ID (a b\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 12);
	CHECK("stray close", parse("a1 ID a)\r\n", 0, MAX) == IMAP_PARSE_BAD);
	CHECK("list touching name", parse("a1 ID(a)\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD);
	CHECK("token after close", parse("a1 ID (a)b\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD);

	strlcpy(buf, "a1 X", sizeof(buf));
	for (i = 0; i < IMAP_MAXARGS; i++)
		strlcat(buf, " a", sizeof(buf));
	strlcat(buf, "\r\n", sizeof(buf));
	CHECK("max args", parse(buf, 0, MAX) == IMAP_PARSE_COMPLETE &&
	    cmd.nargs == IMAP_MAXARGS);
	buf[strlen(buf) - 2] = '\0';
	strlcat(buf, " a\r\n", sizeof(buf));
	CHECK("too many args", parse(buf, 0, MAX) == IMAP_PARSE_BAD &&
	    consumed == strlen(buf));
}

static void
test_pipeline(void)
{
	const char	*s = "a1 NOOP\r\na2 LOGIN {3+}\r\nbob x\r\na3 LOGOUT\r\n";
	size_t		 off = 0;

	CHECK("pipelined first", parse(s, 0, MAX) == IMAP_PARSE_COMPLETE &&
	    consumed == 9 && strcmp(cmd.tag, "a1") == 0);
	off += consumed;
	CHECK("pipelined second", parse(s + off, 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strcmp(cmd.tag, "a2") == 0 &&
	    ARG(0, IMAP_ARG_LITERAL, "bob"));
	off += consumed;
	CHECK("pipelined third", parse(s + off, 0, MAX) ==
	    IMAP_PARSE_COMPLETE && strcmp(cmd.name, "LOGOUT") == 0 &&
	    off + consumed == strlen(s));
	CHECK("bad then good", parse("a1 \"\r\na2 NOOP\r\n", 0, MAX) ==
	    IMAP_PARSE_BAD && consumed == 6 &&
	    parse("a1 \"\r\na2 NOOP\r\n" + 6, 0, MAX) == IMAP_PARSE_COMPLETE);
}

/* feed s one byte at a time: only MORE/LITERAL until the end, then want */
static int
incremental(const char *s, size_t len, enum imap_parse_status want)
{
	enum imap_parse_status	 r;
	size_t			 i;

	for (i = 1; i < len; i++) {
		r = parse(s, i, MAX);
		if (r != IMAP_PARSE_MORE && r != IMAP_PARSE_LITERAL)
			return (0);
	}
	return (parse(s, len, MAX) == want && consumed == len);
}

static void
test_incremental(void)
{
	const char	*lit = "a1 LOGIN {3}\r\nb\0b {0}\r\n \"p \\\"w\"\r\n";
	const char	*id = "a2 ID (\"name\" {4+}\r\nmutt NIL \"v\")\r\n";

	CHECK("incremental sync literal", incremental(lit, 33,
	    IMAP_PARSE_COMPLETE) && cmd.nargs == 3 &&
	    argis(0, IMAP_ARG_LITERAL, "b\0b", 3) &&
	    ARG(1, IMAP_ARG_LITERAL, "") && ARG(2, IMAP_ARG_QUOTED, "p \"w"));
	CHECK("incremental id", incremental(id, strlen(id),
	    IMAP_PARSE_COMPLETE) && cmd.nargs == 6);
	CHECK("incremental bad", incremental("a1 LOGIN \"a\\b\" {5+}\r\n", 21,
	    IMAP_PARSE_BAD) && cmd.close == 1);
	CHECK("incremental literal offsets", parse(lit, 14, MAX) ==
	    IMAP_PARSE_LITERAL && cmd.lit_offset == 14 &&
	    parse(lit, 23, MAX) == IMAP_PARSE_LITERAL && cmd.lit_offset == 23);
}

static void
test_line(void)
{
	size_t		 linelen, used;

	CHECK("line complete", imap_parse_line("dGVzdA==\r\nrest", 14, MAX,
	    &linelen, &used) == IMAP_PARSE_COMPLETE && linelen == 8 &&
	    used == 10);
	CHECK("line bare LF", imap_parse_line("*\n", 2, MAX, &linelen,
	    &used) == IMAP_PARSE_COMPLETE && linelen == 1 && used == 2);
	CHECK("line empty", imap_parse_line("\r\n", 2, MAX, &linelen,
	    &used) == IMAP_PARSE_COMPLETE && linelen == 0 && used == 2);
	CHECK("line more", imap_parse_line("abc\r", 4, MAX, &linelen,
	    &used) == IMAP_PARSE_MORE);
	CHECK("line too long", imap_parse_line("abcd", 4, 4, &linelen,
	    &used) == IMAP_PARSE_TOOBIG);
}

static void
test_misc(void)
{
	size_t	 i;
	int	 zero = 1;

	CHECK("valid tag", imap_valid_tag("A-1.b_2]", 8));
	CHECK("tag with plus invalid", !imap_valid_tag("a+", 2));
	CHECK("tag with brace invalid", !imap_valid_tag("a{", 2));
	CHECK("empty tag invalid", !imap_valid_tag("", 0));

	parse("a1 LOGIN bob secretpw\r\n", 0, MAX);
	imap_cmd_clear(&cmd);
	for (i = 0; i < sizeof(scratch); i++)
		if (scratch[i] != 0)
			zero = 0;
	CHECK("clear wipes scratch", zero && cmd.nargs == 0);
}

int
main(void)
{
	test_simple();
	test_quoted();
	test_literal();
	test_toobig();
	test_bad();
	test_list();
	test_pipeline();
	test_incremental();
	test_line();
	test_misc();
	UNIT_EXIT();
}
