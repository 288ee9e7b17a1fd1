// nnforge floating-point units (combinational), IEEE 754 round to nearest, ties to even,
// gradual underflow (subnormals in and out), for finite operands:
//   nnf_f_to_f32  16-bit float (EXP exponent bits, MAN mantissa bits) -> binary32, exact
//   nnf_f32_mul   binary32 product, rounded (overflow: infinity)
//   nnf_f32_add   binary32 sum, rounded (an exact zero sum is +0 unless both terms are -0)
//   nnf_f32_to_f  binary32 -> 16-bit float, rounded, then saturated at the pattern SAT;
//                 a zero result is +0
// All of them round through nnf_pack: the exact value p * 2^x (p an integer, x a signed
// power) to the nearest float of the target format.
`default_nettype none
// The rounding arithmetic below mixes 32-bit integers (exponents, shift counts) with the
// significands on purpose; every value fits where it is used (checked exhaustively and by
// random vectors against IEEE arithmetic).
/* verilator lint_off WIDTH */
/* verilator lint_off DECLFILENAME */
/* verilator lint_off PINCONNECTEMPTY */

// value = (-1)^s * p * 2^x  ->  float with EXP exponent bits and MAN stored mantissa bits.
// Normal results keep MAN+1 significant bits; below the normal range the quantum is fixed
// at 2^(1 - bias - MAN). The bits dropped are compared with half a quantum (round to
// nearest, ties to the even neighbour). A carry out of the mantissa moves into the
// exponent field by itself (the integer significand is added to (exponent - 1) << MAN).
module nnf_pack #(parameter PW = 48, parameter EXP = 8, parameter MAN = 23) (
    input  wire s,
    input  wire [PW-1:0] p,
    input  wire signed [15:0] x,
    output reg  [EXP+MAN:0] y,
    output reg  ovf
);
    localparam integer BIAS = (1 << (EXP - 1)) - 1;
    localparam integer EMAX = (1 << EXP) - 1;
    localparam integer QW = (PW > EXP + MAN + 1 ? PW : EXP + MAN + 1) + 1;  // holds p and a result
    integer msb, i, er, sh;
    reg [QW-1:0] pe, q, rem, half;
    reg [EXP+MAN+1:0] mag;
    always @* begin
        msb = -1;
        for (i = 0; i < PW; i = i + 1)
            if (p[i]) msb = i;
        er = msb + x + BIAS;  // biased exponent of a normal result
        sh = (er >= 1) ? msb - MAN : (1 - BIAS - MAN) - x;  // bits to drop (< 0: exact left shift)
        pe = {{(QW-PW){1'b0}}, p};
        mag = {(EXP+MAN+2){1'b0}};
        q = {QW{1'b0}}; rem = {QW{1'b0}}; half = {QW{1'b0}};
        if (sh <= 0) begin
            q = pe << (-sh);
        end else if (sh <= PW) begin
            q = pe >> sh;
            rem = pe - (q << sh);
            half = {{(QW-1){1'b0}}, 1'b1} << (sh - 1);
            if (rem > half || (rem == half && q[0])) q = q + 1'b1;
        end  // else: everything is below half a quantum: 0
        ovf = 1'b0;
        if (msb < 0) begin
            y = {s, {(EXP+MAN){1'b0}}};
        end else if (er >= 1) begin
            mag = (er >= EMAX) ? {(EXP+MAN+2){1'b1}} : ((er - 1) << MAN) + q;
            if (mag >= (EMAX << MAN)) begin
                ovf = 1'b1;
                y = {s, EMAX[EXP-1:0], {MAN{1'b0}}};
            end else begin
                y = {s, mag[EXP+MAN-1:0]};
            end
        end else begin
            y = {s, q[EXP+MAN-1:0]};  // subnormal (q = 2^MAN is the smallest normal)
        end
    end
endmodule

module nnf_f_to_f32 #(parameter EXP = 5, parameter MAN = 10) (
    input  wire [EXP+MAN:0] a,
    output wire [31:0] y
);
    localparam integer BIAS = (1 << (EXP - 1)) - 1;
    wire [EXP-1:0] e = a[EXP+MAN-1:MAN];
    wire [MAN:0] sig = {e != 0, a[MAN-1:0]};
    wire signed [15:0] x = (e != 0 ? $signed({1'b0, e}) : 16'sd1) - BIAS - MAN;
    nnf_pack #(.PW(MAN + 1), .EXP(8), .MAN(23)) u_pack (.s(a[EXP+MAN]), .p(sig), .x(x), .y(y), .ovf());
endmodule

module nnf_f32_mul (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire [31:0] y
);
    wire [23:0] ma = {a[30:23] != 0, a[22:0]};
    wire [23:0] mb = {b[30:23] != 0, b[22:0]};
    wire signed [15:0] ea = (a[30:23] != 0) ? $signed({8'd0, a[30:23]}) : 16'sd1;
    wire signed [15:0] eb = (b[30:23] != 0) ? $signed({8'd0, b[30:23]}) : 16'sd1;
    wire [47:0] p = ma * mb;
    wire signed [15:0] x = ea + eb - 16'sd300;  // a = ma * 2^(ea - 150)
    nnf_pack #(.PW(48), .EXP(8), .MAN(23)) u_pack (.s(a[31] ^ b[31]), .p(p), .x(x), .y(y), .ovf());
endmodule

module nnf_f32_add (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire [31:0] y
);
    // big: the operand of larger magnitude; the small one is aligned to it with three
    // extra bits, the last one sticky (any bit shifted out sets it)
    wire swap = b[30:0] > a[30:0];
    wire [31:0] big = swap ? b : a;
    wire [31:0] sml = swap ? a : b;
    wire [23:0] mg = {big[30:23] != 0, big[22:0]};
    wire [23:0] ms = {sml[30:23] != 0, sml[22:0]};
    wire [7:0] eg = (big[30:23] != 0) ? big[30:23] : 8'd1;
    wire [7:0] es = (sml[30:23] != 0) ? sml[30:23] : 8'd1;
    wire [7:0] d = eg - es;
    wire [26:0] ag = {mg, 3'b000};
    wire [26:0] as0 = {ms, 3'b000};
    wire [26:0] as1 = (d >= 8'd27) ? 27'd0 : (as0 >> d);
    wire lost = (d >= 8'd27) ? (ms != 0) : ((as1 << d) != as0);
    wire [26:0] al = {as1[26:1], as1[0] | lost};
    wire [27:0] sum = (big[31] == sml[31]) ? {1'b0, ag} + {1'b0, al} : {1'b0, ag} - {1'b0, al};
    wire signed [15:0] x = $signed({8'd0, eg}) - 16'sd153;
    wire [31:0] sum_r;
    nnf_pack #(.PW(28), .EXP(8), .MAN(23)) u_pack (.s(big[31]), .p(sum), .x(x), .y(sum_r), .ovf());
    assign y = (sum == 28'd0) ? {a[31] & b[31], 31'd0} : sum_r;
endmodule

module nnf_f32_to_f #(parameter EXP = 5, parameter MAN = 10, parameter [EXP+MAN:0] SAT = 16'h7BFF) (
    input  wire [31:0] a,
    output wire [EXP+MAN:0] y
);
    wire [23:0] m = {a[30:23] != 0, a[22:0]};
    wire signed [15:0] x = ((a[30:23] != 0) ? $signed({8'd0, a[30:23]}) : 16'sd1) - 16'sd150;
    wire [EXP+MAN:0] r;
    wire ovf;
    nnf_pack #(.PW(24), .EXP(EXP), .MAN(MAN)) u_pack (.s(a[31]), .p(m), .x(x), .y(r), .ovf(ovf));
    wire big = (a[30:23] == 8'hFF) || ovf || (r[EXP+MAN-1:0] > SAT[EXP+MAN-1:0]);
    assign y = big ? {a[31], SAT[EXP+MAN-1:0]} : ((r[EXP+MAN-1:0] == 0) ? {(EXP+MAN+1){1'b0}} : r);
endmodule

/* verilator lint_on PINCONNECTEMPTY */
/* verilator lint_on DECLFILENAME */
/* verilator lint_on WIDTH */
`default_nettype wire
