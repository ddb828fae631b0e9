// Simulation model of the Lattice ECP5 DP16KD block RAM: the subset that hdl/fifo.py
// (StreamFIFO, ECP5 target) instantiates, so that the ECP5 netlist can run on Verilator
// (tests/test_rtl_systolic.py). Written from the behaviour in Lattice TN1264 (ECP5
// memory usage guide), pseudo-dual-port 512 x 36:
//   DATA_WIDTH_A = DATA_WIDTH_B = 36: port A writes, port B reads; the word is
//   {DIB, DIA} on the write side and {DOB, DOA} on the read side; the word address
//   is AD[13:5]; on port A, ADA[3:0] are the byte enables of the four 9-bit bytes.
//   A write happens at CLKA when CEA and WEA are high, for the enabled bytes.
//   CEB: the read at CLKB loads the addressed word into the output latch (which holds
//   otherwise). REGMODE_B = "OUTREG": an output register behind the latch, loaded at
//   CLKB when OCEB is high, drives DO (one more cycle); "NOREG": the latch drives DO.
//   RSTB (synchronous) clears the latch and the output register.
// Anything else (other widths, true dual port, chip-select decoding, the output
// register on port A, asynchronous reset) is outside the subset and stops the
// simulation. Contents start at zero (the FIFO never reads a word it did not write).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter GSR = "ENABLED";

    localparam OUT_REG = REGMODE_B == "OUTREG";

    initial begin
        if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36 || REGMODE_A != "NOREG"
                || !(REGMODE_B == "NOREG" || OUT_REG) || RESETMODE != "SYNC"
                || CSDECODE_A != "0b000" || CSDECODE_B != "0b000")
            $fatal(1, "DP16KD model: configuration outside the modelled subset");
    end

    wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [8:0] wa = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
    wire [3:0] be = {ADA3, ADA2, ADA1, ADA0};
    wire [8:0] ra = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};
    wire cs_a = {CSA2, CSA1, CSA0} == 3'd0;
    wire cs_b = {CSB2, CSB1, CSB0} == 3'd0;

    reg [35:0] mem [0:511];
    reg [35:0] latch_q = 36'd0;
    reg [35:0] out_q = 36'd0;
    initial begin
        for (integer i = 0; i < 512; i = i + 1) mem[i] = 36'd0;
    end

    always @(posedge CLKA) begin
        if (CEA && WEA && cs_a) begin
            for (integer b = 0; b < 4; b = b + 1)
                if (be[b]) mem[wa][9 * b +: 9] <= di[9 * b +: 9];
        end
    end

    always @(posedge CLKB) begin
        if (RSTB) begin
            latch_q <= 36'd0;
            out_q <= 36'd0;
        end else begin
            if (CEB && cs_b) latch_q <= mem[ra];
            if (OCEB) out_q <= latch_q;
        end
    end

    wire [35:0] dout = OUT_REG ? out_q : latch_q;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0, DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = dout;
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on DECLFILENAME */
